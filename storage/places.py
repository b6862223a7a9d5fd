"""Where files are kept: a local folder or any fsspec object store (s3://bucket/prefix, gs://...).

The archive and the ledger open their place here, so both name a file the same way: an absolute
path in a folder, a full URL (s3://bucket/key) on an object store — what the journal, the
sidecars and the artifacts show, and what DuckDB opens through a registered filesystem.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem


@dataclass(frozen=True)
class Place:
    fs: AbstractFileSystem
    root: str  # the filesystem's own path of the top (no protocol, no trailing slash)
    local: bool

    def location(self, path: str) -> str:
        """The name of `path` that callers keep: itself locally, its full URL otherwise."""
        return path if self.local else self.fs.unstrip_protocol(path)


def open_place(url: str | Path, options: dict[str, Any] | None = None) -> Place:
    """The place `url` names, its filesystem opened with fsspec storage `options`."""
    fs, root = fsspec.core.url_to_fs(str(url), **(options or {}))
    return Place(fs=fs, root=root.rstrip("/"), local=isinstance(fs, LocalFileSystem))

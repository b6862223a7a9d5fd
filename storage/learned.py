"""What reelflow learns as it runs (an endpoint's refusals, prompts a policy refused), kept where
every worker of the deployment sees it: beside a folder journal, or in the journal's database.
Each fact is a text (a model's JSON) under a key; putting a key again replaces its fact, adding
one keeps the first; a fact is only knowledge — a lost one is learned again the next time the
provider refuses — so an unreadable one is skipped, never fatal."""

import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def parsed(model: type[M], texts: list[str]) -> list[M]:
    """The facts that still read as `model`; the others are skipped."""
    found = []
    for text in texts:
        try:
            found.append(model.model_validate_json(text))
        except (ValueError, ValidationError):
            continue
    return found


class Learned(ABC):
    """One kind of fact (capabilities, refused prompts), by key."""

    @abstractmethod
    def put(self, key: str, text: str) -> None: ...

    @abstractmethod
    def add(self, key: str, text: str) -> bool:
        """Keep `text` under `key` unless the key is taken: whether this call kept it (across
        every worker, exactly one of two racing adds of a key does)."""

    @abstractmethod
    def texts(self, prefix: str = "") -> list[str]:
        """The facts whose key starts with `prefix`, by key."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """Drop the fact under `key`, if there is one."""

    @abstractmethod
    def forget(self) -> int:
        """Drop every fact of this kind; how many there were."""


class FolderLearned(Learned):
    """A folder of <key>.json files, each written whole (a rename)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        if not key.replace("-", "").isalnum():
            raise ValueError(f"not a fact key: {key!r}")
        return self.root / f"{key}.json"

    def put(self, key: str, text: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        # a name of its own per writer: two threads of a process put at once (the relay)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)

    def add(self, key: str, text: str) -> bool:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with self._path(key).open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            return False
        return True

    def texts(self, prefix: str = "") -> list[str]:
        found = []
        for path in sorted(self.root.glob(f"{prefix}*.json")) if self.root.is_dir() else []:
            try:
                found.append(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
        return found

    def remove(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def forget(self) -> int:
        gone = 0
        for path in self.root.glob("*.json") if self.root.is_dir() else []:
            path.unlink(missing_ok=True)
            gone += 1
        return gone

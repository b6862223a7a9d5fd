"""Failures said in one line — in the CLI and in a flow run's logs (the Prefect UI) alike.

Prefect logs a failed flow or task run with its traceback. For a user's mistake (the request,
manifest, image or catalog at fault), a provider or disk failure the CLI says with what to do,
or a failure a clip's fallback decides on and logs ("fell back from ..."), the traceback says
nothing more, so it is dropped and the message stays. Which failures those are is decided by the
exception's type, never by its message. At DEBUG (`PREFECT_LOGGING_LEVEL=DEBUG`, or the CLI's
`--debug`) every traceback is kept. Plain: no Prefect import until a flow run asks.
"""

import logging

from pydantic import ValidationError

from providers.catalog import CatalogError
from providers.router import PlanError
from tasks.fallback import FALLBACK_ERRORS
from tasks.image_files import ImageError
from tasks.input_files import InputError
from tasks.manifest import ManifestError

# what a user can cause (the CLI says each as one line and exits 2)
USER_ERRORS: tuple[type[Exception], ...] = (PlanError, ManifestError, InputError, ImageError,
                                            CatalogError, ValidationError)
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def advised_failures() -> tuple[type[Exception], ...]:
    """Provider and disk failures said in one line with what to do, exit 1: not the user's
    mistake (exit 2), not a bug (a traceback)."""
    # their modules hold Prefect tasks: imported when a failure is judged, not at CLI start
    from providers.errors import SubmitUnknown
    from providers.router import NoModelLeft
    from tasks.archiving import ClipLost, ClipUnarchived
    from tasks.awaiting import PendingAtDeadline
    from tasks.batch_summary import BatchIncomplete

    return (PendingAtDeadline, ClipLost, ClipUnarchived, SubmitUnknown, BatchIncomplete,
            NoModelLeft)


def explained(err: BaseException | None) -> bool:
    """A failure said in one line: a user's mistake, an advised failure, or one a fallback
    decides on."""
    return isinstance(err, (*USER_ERRORS, *FALLBACK_ERRORS, *advised_failures()))


class QuietExplained(logging.Filter):
    """On a run logger: drops the traceback of an explained failure (the message stays), or,
    with `quiet=False`, keeps every traceback — a choice made once per process."""

    def __init__(self, quiet: bool = True):
        super().__init__()
        self.quiet = quiet

    def filter(self, record: logging.LogRecord) -> bool:
        if self.quiet and record.exc_info and explained(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
        return True


def choose_tracebacks(quiet: bool) -> None:
    """Drop (`quiet`) or keep explained failures' tracebacks in this process's run logs,
    replacing any earlier choice."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, QuietExplained)]:
            logger.removeFilter(old)
        logger.addFilter(QuietExplained(quiet))


def quiet_explained_tracebacks() -> None:
    """For a flow run (a worker's too): drop explained tracebacks unless Prefect logs at DEBUG.
    Idempotent; a choice already made in this process (the CLI's `--debug`) stands."""
    if any(isinstance(f, QuietExplained) for name in RUN_LOGGERS
           for f in logging.getLogger(name).filters):
        return
    choose_tracebacks(not _debugging())


def _debugging() -> bool:
    from prefect.settings import get_current_settings

    level = get_current_settings().logging.level
    numeric = logging.getLevelName(str(level).upper()) if not isinstance(level, int) else level
    return (isinstance(numeric, int) and numeric <= logging.DEBUG) or any(
        logging.getLogger(name).getEffectiveLevel() <= logging.DEBUG for name in RUN_LOGGERS)

import logging
import sys

import pytest
from prefect.settings import PREFECT_LOGGING_LEVEL, temporary_settings

from providers.errors import RateLimited, SubmitUnknown
from providers.router import PlanError
from tasks.explained import (
    RUN_LOGGERS,
    QuietExplained,
    choose_tracebacks,
    quiet_explained_tracebacks,
)


def failed(err: BaseException) -> logging.LogRecord:
    """A run-log record of `err` with its traceback, as Prefect logs a failed run."""
    try:
        raise err
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1,
                             "Finished in state Failed", None, exc_info)


@pytest.fixture
def run_loggers():
    """The run loggers' filters as they were before the test, put back after it."""
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    saved = [list(logger.filters) for logger in loggers]
    for logger in loggers:
        logger.filters.clear()
    yield loggers
    for logger, filters in zip(loggers, saved, strict=True):
        logger.filters[:] = filters


def quiet_filters(loggers) -> list[list[bool]]:
    return [[f.quiet for f in logger.filters if isinstance(f, QuietExplained)]
            for logger in loggers]


def test_a_user_mistake_loses_its_traceback_and_keeps_its_message():
    record = failed(PlanError("policy", "unknown policy 'cheepest'"))
    record.exc_text = "Traceback ..."
    assert QuietExplained().filter(record)
    assert record.exc_info is None and record.exc_text is None
    assert record.getMessage() == "Finished in state Failed"


@pytest.mark.parametrize("err", [RateLimited("slow down"), SubmitUnknown("no answer")])
def test_fallback_and_advised_failures_lose_their_traceback(err):
    record = failed(err)
    QuietExplained().filter(record)
    assert record.exc_info is None


def test_a_bug_keeps_its_traceback():
    record = failed(RuntimeError("a bug"))
    assert QuietExplained().filter(record)
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_keeping_tracebacks_keeps_a_user_mistake_s_too():
    record = failed(PlanError("policy", "unknown"))
    QuietExplained(quiet=False).filter(record)
    assert record.exc_info is not None


def test_a_flow_run_installs_the_filter_once(run_loggers):
    with temporary_settings({PREFECT_LOGGING_LEVEL: "INFO"}):
        quiet_explained_tracebacks()
    quiet_explained_tracebacks()
    assert quiet_filters(run_loggers) == [[True], [True]]


def test_prefect_logging_at_debug_keeps_every_traceback(run_loggers):
    with temporary_settings({PREFECT_LOGGING_LEVEL: "DEBUG"}):
        quiet_explained_tracebacks()
    assert quiet_filters(run_loggers) == [[False], [False]]


def test_the_cli_s_debug_stands_when_a_flow_run_starts(run_loggers):
    choose_tracebacks(quiet=False)  # `reelflow ... --debug`
    with temporary_settings({PREFECT_LOGGING_LEVEL: "INFO"}):
        quiet_explained_tracebacks()
    assert quiet_filters(run_loggers) == [[False], [False]]
    choose_tracebacks(quiet=True)  # the next command in the same process, without it
    assert quiet_filters(run_loggers) == [[True], [True]]

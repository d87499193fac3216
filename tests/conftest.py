"""Hooks and fixtures for every suite.

A failing test's report carries the end of the log of each ragexd it had
running (tests.harness.RagexInstance), as Watchman's integration tests print
the server's log: the reason a request failed is usually written there.
``rx`` is the one module-scoped ragexd that suites in several folders share.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.instance import STARTED, RagexInstance

_FIRST = pytest.StashKey[int]()


@pytest.fixture(scope="module")
def rx() -> Iterator[RagexInstance]:
    """One real ragexd (process runtime) shared by a module's tests, watching no
    tree (``RAGEX_WATCH=0``: the tests index when they mean to).  A module that
    needs other settings defines its own ``rx``, which takes precedence."""
    daemon = RagexInstance(RAGEX_WATCH="0")
    daemon.start()
    yield daemon
    daemon.cleanup()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_FIRST] = len(STARTED)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    first = item.stash.get(_FIRST, len(STARTED))
    for n, rx in enumerate(STARTED):
        running = rx.proc is not None and rx.proc.poll() is None
        if running or n >= first:
            report.sections.append((f"ragexd log ({rx.base})", rx.output()))

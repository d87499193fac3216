"""Hooks for every suite.

A failing test's report carries the end of the log of each ragexd it had
running (tests.harness.RagexInstance), as Watchman's integration tests print
the server's log: the reason a request failed is usually written there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.instance import STARTED

_FIRST = pytest.StashKey[int]()


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

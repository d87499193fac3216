"""Which files a first index embeds first.

Embedding is the slow half of a first index (the catalog — names, keywords,
definitions — is ready long before), so the order decides what semantic search
can already find while the rest is embedded.  Users mostly ask about what they
are working on, so: files changed recently in git first, then the project's own
source, then its tests, then docs, then examples, then vendored code.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

RECENT, SOURCE, TESTS, DOCS, EXAMPLES, VENDORED = range(6)
#: How far back "recently changed" looks: enough commits for a working set.
RECENT_COMMITS = 50
GIT_TIMEOUT = 5.0

_VENDORED = {"vendor", "vendored", "_vendor", "third_party", "thirdparty", "third-party",
             "external", "externals", "extern", "node_modules", "deps"}
_EXAMPLES = {"examples", "example", "samples", "sample", "demo", "demos", "benchmarks",
             "bench", "asv_benchmarks"}
_DOCS = {"docs", "doc", "documentation", "man"}
_TESTS = {"tests", "test", "testing", "__tests__", "spec", "specs"}
_DOC_LANGUAGES = {"markdown", "rst", "text", "restructuredtext"}


def classify(rel: str, language: str = "") -> int:
    """The rank of a file by its path alone (lower is embedded sooner)."""
    path = PurePosixPath(rel)
    dirs = {p.lower() for p in path.parts[:-1]}
    name = path.name.lower()
    if dirs & _VENDORED:
        return VENDORED
    if dirs & _EXAMPLES:
        return EXAMPLES
    if dirs & _DOCS or language in _DOC_LANGUAGES:
        return DOCS
    stem = name.rsplit(".", 1)[0]
    if dirs & _TESTS or stem.startswith("test_") or stem.endswith(("_test", "_tests", ".test",
                                                                   ".spec")) \
            or name == "conftest.py":
        return TESTS
    return SOURCE


def recently_changed(root: Path) -> set[str]:
    """Paths (relative to ``root``) touched by the last commits or changed and
    not committed; empty outside git or when git is missing or slow."""
    out: set[str] = set()
    for argv in (["git", "diff", "--name-only", "--relative", "HEAD"],
                 ["git", "log", f"-n{RECENT_COMMITS}", "--name-only", "--relative",
                  "--format=", "HEAD"]):
        try:
            proc = subprocess.run(argv, cwd=root, capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("no git history for priorities: %s", exc)
            return out
        if proc.returncode != 0:
            return out
        out.update(line for line in proc.stdout.splitlines() if line)
    return out


class Priorities:
    """Ranks the files of one index run."""

    def __init__(self, root: Path) -> None:
        self.recent = recently_changed(root)

    def __call__(self, rel: str, language: str = "") -> int:
        if rel in self.recent:
            return RECENT
        return classify(rel, language)

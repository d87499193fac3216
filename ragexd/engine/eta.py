"""How long the rest of an index's embedding takes: the ETA its progress shows.

Two things made the first estimate of a first index 15-30 % pessimistic:

* It counted chunks, but a chunk costs what the model reads of it: its tokens,
  up to the model's limit.  Phase 2 embeds the most wanted chunks first (source,
  then tests, docs, examples), and the source's are the longest, so the rate in
  chunks a second measured on them under-ran the rest (jinja2, OpenVINO child:
  31 chunks/s on the first batches, 41 on the last, at a steady ~10,400 capped
  characters a second).  Work is counted as characters, each chunk's capped at
  what the model reads (``work``).
* It averaged the whole run.  The rate changes within a run: a bulk child that
  fails hands its backlog to the worker's slower onnxruntime, and queries or
  other processes take the cores for a while.  The rate is the one of the last
  few batches (``RECENT_BATCHES``).

What is left is measured once in work (a scan of the pending texts: ~0.1 s for
15,000 of them, too slow for every search's coverage) and counted down by each
batch (``Backlog``): since the longest chunks go first, the average chunk left
grows shorter as the run goes on, which a pending count times one average misses.
"""

from __future__ import annotations

from collections import deque

from .embedding import MAX_TOKENS

#: Characters of code a token holds, about (word pieces of identifiers,
#: operators, indentation): what makes ``WORK_CAP`` the text the model reads.
CHARS_PER_TOKEN = 4
#: A chunk's text beyond this is truncated by the model: it costs nothing.
WORK_CAP = CHARS_PER_TOKEN * MAX_TOKENS
#: Batches the rate is measured over: enough to smooth one batch a query held
#: up, few enough to follow a change of runtime within seconds.
RECENT_BATCHES = 4


def work(text: str) -> int:
    """What embedding ``text`` costs, in the unit of the rate: its characters up
    to the model's limit."""
    return min(len(text), WORK_CAP)


class EmbedRate:
    """The embedding rate of a run, from the batches it has stored: fed each
    batch's work and seconds, it answers the seconds the rest will take."""

    def __init__(self) -> None:
        self._recent: deque[tuple[int, float]] = deque(maxlen=RECENT_BATCHES)

    def add(self, done: int, seconds: float) -> None:
        """One batch stored: ``done`` work (``work`` of each text) in ``seconds``."""
        if done > 0 and seconds > 0:
            self._recent.append((done, seconds))

    def per_second(self) -> float | None:
        """Work a second over the recent batches; None before the first one."""
        if not self._recent:
            return None
        return sum(w for w, _ in self._recent) / sum(s for _, s in self._recent)

    def seconds_left(self, work_left: float) -> float | None:
        """Seconds until ``work_left`` is embedded at the recent rate (None: no
        batch measured yet, so no honest estimate)."""
        rate = self.per_second()
        if rate is None:
            return None
        return round(max(0.0, work_left) / rate, 1)


class Backlog:
    """What a run has left to embed, in work: measured once, then counted down."""

    def __init__(self) -> None:
        self._measured: tuple[int, int] | None = None   # (chunks, work) when measured
        self._chunks_done = 0
        self._work_done = 0

    @property
    def measured(self) -> bool:
        return self._measured is not None

    def measure(self, chunks: int, work_left: int) -> None:
        """The pending chunks and their work, as the catalog holds them now."""
        self._measured = (chunks, work_left)
        self._chunks_done = self._work_done = 0

    def embedded(self, chunks: int, done: int) -> None:
        """One batch stored (counted only once measured: the measure saw it gone)."""
        if self._measured is not None:
            self._chunks_done += chunks
            self._work_done += done

    def mean(self) -> float:
        """The work of the average chunk measured (0 before any)."""
        chunks, total = self._measured or (0, 0)
        return total / chunks if chunks else 0.0

    def work_left(self, pending: int) -> float:
        """The work left, given the chunks the catalog has ``pending`` now: the
        count-down, plus (or minus) chunks catalogued or replaced since the
        measure at the average chunk's work."""
        if self._measured is None:
            return pending * self.mean()
        chunks, total = self._measured
        left_chunks = chunks - self._chunks_done
        return max(0.0, total - self._work_done + (pending - left_chunks) * self.mean())

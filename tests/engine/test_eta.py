"""The progress ETA of an index, as a unit: fed batches as the indexer feeds them."""

from __future__ import annotations

from ragexd.engine.embedding import MAX_TOKENS
from ragexd.engine.eta import RECENT_BATCHES, WORK_CAP, Backlog, EmbedRate, work
from ragexd.engine.indexer import LiveRun

#: A first index of jinja2 (975 chunks) under ``runtime = auto``, its backlog on
#: the OpenVINO child, load ~4.3: each batch's chunks, work (``work`` of each
#: text) and seconds, in the order phase 2 embedded them (source first: the
#: longest chunks).
JINJA2_AUTO = [(128, 39138, 4.13), (128, 49511, 4.56), (128, 41086, 3.82),
               (128, 35492, 3.45), (128, 32224, 3.03), (128, 36251, 3.53),
               (128, 30439, 3.10), (79, 20589, 1.93)]


def _ratios(batches: list[tuple[int, int, float]], unit: int) -> list[float]:
    """ETA over the time the rest took, after each batch but the last; ``unit``
    picks what a batch's size is counted in (0: chunks, 1: work)."""
    out = []
    for k in range(1, len(batches)):
        rate = EmbedRate()
        for batch in batches[:k]:
            rate.add(batch[unit], batch[2])
        eta = rate.seconds_left(sum(b[unit] for b in batches[k:]))
        assert eta is not None
        out.append(eta / sum(b[2] for b in batches[k:]))
    return out


def test_a_first_index_eta_counts_what_the_model_reads_and_is_not_pessimistic() -> None:
    """Counted in chunks, the recorded run's first estimates were 16-29 % long
    (the source's long chunks go first); in what the model reads every one is
    within 12 % of the time the rest took."""
    by_chunks = _ratios(JINJA2_AUTO, 0)
    assert min(by_chunks[:4]) > 1.15, by_chunks   # what the user saw: "92 s" for 80
    by_work = _ratios(JINJA2_AUTO, 1)
    assert all(0.88 < r < 1.12 for r in by_work), by_work


def test_the_rate_follows_a_change_of_runtime_within_a_few_batches() -> None:
    """A bulk child that fails hands the rest to the worker's onnxruntime, about
    three times slower: the ETA is the new rate's once RECENT_BATCHES batches ran
    on it, not a whole-run average that stays optimistic to the end."""
    rate = EmbedRate()
    for _ in range(10):
        rate.add(30_000, 3.0)          # 10,000 a second on the child
    assert rate.seconds_left(100_000) == 10.0
    for _ in range(RECENT_BATCHES):
        rate.add(30_000, 9.0)          # 3,333 a second in the worker
    assert rate.seconds_left(100_000) == 30.0


def test_no_estimate_before_a_batch_and_none_from_an_empty_one() -> None:
    rate = EmbedRate()
    assert rate.seconds_left(1000) is None
    rate.add(0, 0.5)                   # a batch of chunks all gone meanwhile
    rate.add(500, 0.0)                 # a clock that did not move
    assert rate.per_second() is None and rate.seconds_left(1000) is None
    rate.add(500, 1.0)
    assert rate.seconds_left(1000) == 2.0 and rate.seconds_left(-5) == 0.0


def test_a_chunk_costs_its_characters_up_to_what_the_model_reads() -> None:
    assert work("def f(): pass") == 13
    assert work("x" * 100_000) == WORK_CAP == work("x" * WORK_CAP)
    assert 3 * MAX_TOKENS <= WORK_CAP <= 5 * MAX_TOKENS   # code: 3-5 characters a token


def test_the_work_left_counts_down_the_long_chunks_that_went_first() -> None:
    """Measured once (a scan of every pending text), then counted down by each
    batch: the chunks left are shorter than the average measured, which a
    pending count times that average would miss."""
    backlog = Backlog()
    backlog.embedded(128, 60_000)            # before the measure: already gone from it
    backlog.measure(1000, 300_000)
    backlog.embedded(500, 200_000)           # the long ones first
    assert backlog.work_left(500) == 100_000 # not 500 x 300
    assert backlog.work_left(510) == 103_000 # 10 re-catalogued since, at the mean
    assert backlog.work_left(0) == 0.0


def test_every_run_measures_its_own_rate_and_backlog() -> None:
    """The estimates live in the run's LiveRun: a new run never starts from the
    last one's (a dataclass default shared between instances would)."""
    one, two = LiveRun(), LiveRun()
    one.rate.add(1000, 1.0)
    one.backlog.measure(10, 1000)
    assert two.rate.per_second() is None and not two.backlog.measured

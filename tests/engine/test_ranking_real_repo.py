"""Ranking on a real repository's layout: scikit-learn's code beside its own tests.

``bench/eval_repo.py`` asks user-phrased questions of the whole scikit-learn tree; its
failure analysis (bench/QUALITY.md, "Repository-scale questions") found that the test
prior is what keeps sklearn's tests (58% of its chunks) out of the top hit: without it
15 of 55 top hits are in test files, with it none.  This is that claim on two real files,
an implementation and the test module that repeats its words.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragexd.engine import Engine, SearchQuery

from tests.engine.test_ranking import indexed_engine, search_without

REAL_REPO = Path(__file__).parent / "data" / "real_repo"
FILES: dict[str, str | Path] = {
    p.relative_to(REAL_REPO).as_posix(): p for p in REAL_REPO.rglob("*.py")}


@pytest.fixture(scope="module")
def sklearn_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from indexed_engine(tmp_path_factory, "sklearn", FILES)


def test_a_user_question_finds_sklearns_implementation_above_the_tests_repeating_its_words(
        sklearn_engine: Engine) -> None:
    # (the questions asked here before, "weights to balance classes in an imbalanced
    # dataset" and "balanced weights for unbalanced labels", find the function even
    # without the prior since the context recipe reads a long function's last lines,
    # which return the class weights, and its body after the whole signature)
    query = SearchQuery("balanced class weights", mode="auto", limit=3)
    # the tests say "balanced", "class" and "weight" more often than the code
    # does: without the test prior one of them is the first hit ...
    without = search_without(sklearn_engine, "test_prior", query)
    assert without[0].path == "sklearn/utils/tests/test_class_weight.py"
    # ... with it, the function a person would call
    hits = sklearn_engine.search(query).hits
    assert (hits[0].path, hits[0].name) == ("sklearn/utils/class_weight.py",
                                            "compute_class_weight")


def test_asking_for_the_tests_of_it_finds_sklearns_tests(sklearn_engine: Engine) -> None:
    hits = sklearn_engine.search(SearchQuery("tests of the balanced class weights",
                                             mode="auto", limit=3)).hits
    assert hits[0].path == "sklearn/utils/tests/test_class_weight.py"

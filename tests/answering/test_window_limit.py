"""The work bound of one query: model windows counted after tokenising, not characters."""

from __future__ import annotations

import pytest

from qatune.answering.answerer import Query, WindowLimit
from qatune.answering.factory import open_answerer
from qatune.data.squad import question_examples
from qatune.data.windows import WindowConfig
from qatune.errors import DataError

WINDOW = WindowConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
PROSE = "The river runs to the sea past the old mill. " * 12  # ~540 characters of plain words
DIGITS = "1,2;3.4-5/6 " * 45  # as many characters, several tokens per character group


@pytest.fixture(scope="module")
def answerer(tiny_bert):
    return open_answerer(str(tiny_bert), window=WINDOW)[0]


def _windows(answerer, context: str) -> int:
    return len(answerer.windows_of(question_examples([(context, "Where?")])))


def test_windows_not_characters_decide(answerer):
    """Two contexts of about the same length differ in windows; the limit lets one through and not the other."""
    prose, digits = _windows(answerer, PROSE), _windows(answerer, DIGITS)
    assert abs(len(PROSE) - len(DIGITS)) < 60 and digits > prose
    answerer.max_windows = WindowLimit(prose, "--max-request-windows")
    try:
        assert answerer.ask(PROSE, "Where?")
        with pytest.raises(
            DataError, match=rf"{digits} model windows.*at most {prose} per request \(--max-request-windows\)"
        ):
            answerer.ask(DIGITS, "Where?")
    finally:
        answerer.max_windows = None


def test_a_query_over_the_limit_does_not_fail_the_others_of_its_batch(answerer):
    """The server's micro-batch: the too-large query gets its error, the others their answers, unchanged."""
    expected = answerer.predict_many([(PROSE, "Where?")], 2)[0]
    answerer.max_windows = WindowLimit(_windows(answerer, PROSE) + 1)
    try:
        queries = [Query([(PROSE, "Where?")], 2), Query([(DIGITS, "Where?")] * 2, 2), Query([(PROSE, "Where?")], 2)]
        first, refused, last = answerer.predict_queries(queries)
    finally:
        answerer.max_windows = None
    assert isinstance(refused, DataError) and "max_windows" in str(refused)
    for got in (first, last):
        assert [a.text for a in got[0].answers] == [a.text for a in expected.answers]
        assert got[0].answers[0].probability == pytest.approx(expected.answers[0].probability, abs=1e-5)


def test_every_query_refused_answers_nothing(answerer):
    answerer.max_windows = WindowLimit(1)
    try:
        (refused,) = answerer.predict_queries([Query([(DIGITS, "Where?")], 1)])
    finally:
        answerer.max_windows = None
    assert isinstance(refused, DataError)

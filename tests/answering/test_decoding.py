"""qatune.answering.decoding: the probability definition, distinct top-k, windows, null answer."""

from __future__ import annotations

import re

import numpy as np
import pytest

from qatune.answering.decoding import (
    Decoding,
    decode,
    group_windows,
    predict,
    span_scores,
    window_candidates,
    word_boundaries,
)
from qatune.evaluation.metrics import normalize_answer

CONTEXT = "alpha beta gamma delta"
# tokens: [CLS] q [SEP] alpha beta gamma delta [SEP]
OFFSETS = np.array([[-1, -1], [-1, -1], [-1, -1], [0, 5], [6, 10], [11, 16], [17, 22], [-1, -1]])


def test_candidates_respect_context_and_max_length():
    s = np.zeros(8)
    e = np.zeros(8)
    starts, ends, scores = window_candidates(s, e, OFFSETS, max_answer_length=2)
    spans = {(int(a), int(b)) for a, b in zip(starts, ends)}
    assert spans == {(0, 5), (6, 10), (11, 16), (17, 22), (0, 10), (6, 16), (11, 22)}


def test_probabilities_are_a_softmax_over_all_spans():
    rng = np.random.default_rng(0)
    s, e = rng.normal(size=8), rng.normal(size=8)
    answers = decode(CONTEXT, [s], [e], [OFFSETS], top_k=50, decoding=Decoding(max_answer_length=30))
    assert len(answers) == 10  # 4 + 3 + 2 + 1 spans, all distinct texts
    assert abs(sum(a.probability for a in answers) - 1) < 1e-9
    best = max(answers, key=lambda a: a.score)
    assert answers[0] == best
    assert all(CONTEXT[a.start : a.end] == a.text for a in answers)


def test_top_k_does_not_change_probabilities():
    s = np.array([0, 0, 0, 3, 1, 0, 0, 0.0])
    e = np.array([0, 0, 0, 0, 3, 1, 0, 0.0])
    top1 = decode(CONTEXT, [s], [e], [OFFSETS], top_k=1)
    top3 = decode(CONTEXT, [s], [e], [OFFSETS], top_k=3)
    assert top1[0] == top3[0] and top1[0].text == "alpha beta"
    assert [a.probability for a in top3] == sorted((a.probability for a in top3), reverse=True)


def test_same_span_in_two_windows_keeps_its_best_score():
    s1 = np.array([0, 0, 0, 5, 0, 0, 0, 0.0])
    e1 = np.array([0, 0, 0, 5, 0, 0, 0, 0.0])
    s2, e2 = s1 * 0.2, e1 * 0.2
    one = decode(CONTEXT, [s1], [e1], [OFFSETS], top_k=1)[0]
    two = decode(CONTEXT, [s1, s2], [e1, e2], [OFFSETS, OFFSETS], top_k=1)[0]
    assert one.text == two.text == "alpha"
    assert abs(one.probability - two.probability) < 1e-12  # duplicates are not double counted


def test_spans_that_are_one_answer_share_its_probability():
    context = "The Denver Broncos beat the Panthers; Denver Broncos fans cheered."
    words = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", context)]
    offsets = np.array([[-1, -1]] * 3 + words + [[-1, -1]])
    s, e = np.zeros(len(offsets)), np.zeros(len(offsets))
    s[3], s[4], s[10] = 4.0, 4.5, 4.0  # starts: 'The', 'Denver', the second 'Denver'
    e[5], e[11], e[8] = 5.0, 5.0, 4.6  # ends: 'Broncos', the second 'Broncos', 'Panthers'
    answers = decode(context, [s], [e], [offsets], top_k=3, decoding=Decoding(max_answer_length=5))
    texts = [a.text for a in answers]
    # 'Denver Broncos' (twice) and 'The Denver Broncos' are one answer; alone, its best span (9.5) would
    # get less than half the probability
    assert texts[0] == "Denver Broncos" and answers[0].start == context.index("Denver")
    assert "The Denver Broncos" not in texts and texts.count("Denver Broncos") == 1
    assert len({normalize_answer(t) for t in texts}) == len(texts)
    _, _, scores = span_scores(context, [s], [e], [offsets], Decoding(max_answer_length=5))
    z = np.exp(scores).sum()
    # 'Denver Broncos' 9.5, 'The Denver Broncos' 9, the second 'Denver Broncos' 9, '; Denver Broncos' 5
    assert answers[0].probability == pytest.approx((np.exp(9.5) + 2 * np.exp(9.0) + np.exp(5.0)) / z)
    assert answers[0].probability > 0.5 > np.exp(9.5) / z
    everything = decode(context, [s], [e], [offsets], top_k=1000, decoding=Decoding(max_answer_length=5))
    assert abs(sum(a.probability for a in everything) - 1) < 1e-9  # every span counted once


def test_null_answer_for_v2_models():
    s = np.array([9, 0, 0, 0, 0, 0, 0, 0.0])
    e = np.array([9, 0, 0, 0, 0, 0, 0, 0.0])
    answers = decode(CONTEXT, [s], [e], [OFFSETS], top_k=2, decoding=Decoding(with_null=True))
    assert answers[0].text == "" and answers[0].probability > 0.9
    assert decode(CONTEXT, [s], [e], [OFFSETS], top_k=1)[0].text != ""


def test_no_answer_probability():
    rng = np.random.default_rng(1)
    s1, e1, s2, e2 = (rng.normal(size=8) for _ in range(4))
    v1 = predict(CONTEXT, [s1, s2], [e1, e2], [OFFSETS, OFFSETS], top_k=3)
    # by hand: the null answer scores the lower CLS score of the two windows, against all 10 distinct spans
    null = min(s1[0] + e1[0], s2[0] + e2[0])
    spans = {}
    for s, e in ((s1, e1), (s2, e2)):
        for i in range(3, 7):
            for j in range(i, 7):
                spans[(i, j)] = max(spans.get((i, j), -np.inf), s[i] + e[j])
    expected = np.exp(null) / (np.exp(null) + sum(np.exp(list(spans.values()))))
    assert abs(v1.no_answer_probability - expected) < 1e-9
    assert v1.answers == decode(CONTEXT, [s1, s2], [e1, e2], [OFFSETS, OFFSETS], top_k=3)
    assert abs(sum(a.probability for a in predict(CONTEXT, [s1], [e1], [OFFSETS], top_k=20).answers) - 1) < 1e-9
    v2 = predict(CONTEXT, [s1, s2], [e1, e2], [OFFSETS, OFFSETS], top_k=20, decoding=Decoding(with_null=True))
    empty = next(a for a in v2.answers if a.text == "")
    assert abs(v2.no_answer_probability - empty.probability) < 1e-12
    assert abs(v2.no_answer_probability - expected) < 1e-9  # the same number either way


def test_group_windows():
    groups = group_windows(np.array([0, 0, 1, 2, 2, 2]))
    assert [g.tolist() for g in groups] == [[0, 1], [2], [3, 4, 5]]


def test_word_boundaries():
    context = "Bidirectional Encoder, U.S. 東京 ok"
    allowed = [i for i, ok in enumerate(word_boundaries(context)) if ok]
    # inside 'Bidirectional', 'Encoder', 'U', 'S', 'ok' nothing; around punctuation, spaces and each CJK character
    assert allowed == [0, 13, 14, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 33]


def _answers(tokenizer, context: str, align: bool, seed: int, top_k: int = 40):
    from qatune.data.squad import Example
    from qatune.data.windows import WindowConfig, tokenize_windows

    windows = tokenize_windows([Example("q", "what?", context, (), ())], tokenizer, WindowConfig(64, 16, 16))
    rng = np.random.default_rng(seed)
    starts = [rng.normal(size=len(ids)) for ids in windows.input_ids]
    ends = [rng.normal(size=len(ids)) for ids in windows.input_ids]
    decoding = Decoding(max_answer_length=8, align_to_words=align)
    return predict(context, starts, ends, windows.offsets, top_k, decoding).answers


LONG_WORDS = (
    "Bidirectional Encoder Representations from Transformers, unsupervised pretraining of "
    "electroencephalography classifiers on hyperparameterisation benchmarks."
)


def _whole_word(context: str, a) -> bool:
    inside = lambda i: 0 < i < len(context) and context[i - 1].isalnum() and context[i].isalnum()  # noqa: E731
    return not inside(a.start) and not inside(a.end)


def test_answers_are_whole_words_for_wordpiece_and_bpe(roberta_tokenizer):
    from transformers import AutoTokenizer

    from qatune.models.loading import default_model_path

    for tokenizer in (AutoTokenizer.from_pretrained(default_model_path()), roberta_tokenizer):
        aligned = [a for seed in range(5) for a in _answers(tokenizer, LONG_WORDS, True, seed)]
        assert aligned and all(_whole_word(LONG_WORDS, a) for a in aligned)
        raw = [a for seed in range(5) for a in _answers(tokenizer, LONG_WORDS, False, seed)]
        assert not all(_whole_word(LONG_WORDS, a) for a in raw)  # sub-word spans exist without alignment


def test_unspaced_scripts_keep_token_boundaries():
    from transformers import AutoTokenizer

    from qatune.models.loading import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    context = "東京都は日本の首都です"
    aligned = {(a.start, a.end) for a in _answers(tokenizer, context, True, 0, top_k=100)}
    raw = {(a.start, a.end) for a in _answers(tokenizer, context, False, 0, top_k=100)}
    assert aligned == raw and any(a - b == 1 for b, a in aligned)


def test_a_word_longer_than_max_answer_length_still_gets_an_answer():
    from transformers import AutoTokenizer

    from qatune.models.loading import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    context = "x" + "qzjkvw" * 20  # one 121-character word of many sub-word tokens
    assert _answers(tokenizer, context, True, 0)


def test_temperature_scales_probabilities_not_ranking():
    rng = np.random.default_rng(3)
    s, e = rng.normal(size=8) * 3, rng.normal(size=8) * 3
    plain = predict(CONTEXT, [s], [e], [OFFSETS], top_k=10)
    warm = predict(CONTEXT, [s], [e], [OFFSETS], top_k=10, decoding=Decoding(temperature=2.0))
    assert [a.text for a in plain.answers] == [a.text for a in warm.answers]
    assert [a.raw_probability for a in warm.answers] == [a.probability for a in plain.answers]
    scores = np.array([a.score for a in warm.answers]) / 2
    expected = np.exp(scores - np.logaddexp.reduce(scores))
    assert np.allclose([a.probability for a in warm.answers], expected)
    assert warm.answers[0].probability < plain.answers[0].probability  # T > 1: less sure


def test_a_saved_null_threshold_decides_whether_to_answer():
    s = np.array([2.0, 0, 0, 1, 0, 0, 0, 0])
    e = np.array([2.0, 0, 0, 1, 0, 0, 0, 0])
    free = predict(CONTEXT, [s], [e], [OFFSETS], top_k=4, decoding=Decoding(with_null=True))
    p_null = free.no_answer_probability
    assert free.answers[0].text == "" and 0.1 < p_null < 0.9  # no threshold: the null ranks by probability
    strict = predict(CONTEXT, [s], [e], [OFFSETS], top_k=3, decoding=Decoding(with_null=True, null_threshold=0.95))
    assert [a.text for a in strict.answers] == [a.text for a in free.answers[1:4]]  # the spans, never the empty one
    loose = predict(CONTEXT, [s], [e], [OFFSETS], top_k=3, decoding=Decoding(with_null=True, null_threshold=0.01))
    assert [a.text for a in loose.answers] == [a.text for a in free.answers[:3]] and loose.answers[
        0
    ].probability == p_null
    high = np.array([0.0, 0, 0, 5, 4, 3, 2, 0])  # the null ranks last but is over a low threshold
    low = predict(CONTEXT, [high], [high], [OFFSETS], top_k=2, decoding=Decoding(with_null=True, null_threshold=1e-9))
    assert low.answers[0].text == "" and low.answers[1].text == "alpha"
    v1 = predict(CONTEXT, [s], [e], [OFFSETS], top_k=3, decoding=Decoding(null_threshold=0.01))
    assert all(a.text for a in v1.answers)  # a v1 model keeps answering exactly as before


def test_a_context_without_candidate_spans_has_no_answers():
    """No window token inside the context (a context of one control character): no answers, no error."""
    import numpy as np

    from qatune.answering.decoding import predict

    outside = np.full((3, 2), -1)
    found = predict("\x1b", [np.zeros(3)], [np.zeros(3)], [outside], top_k=3)
    assert found.answers == [] and found.no_answer_probability == 1.0

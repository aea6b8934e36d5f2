"""qatune.predict: the probability definition, distinct top-k, windows, null answer."""

from __future__ import annotations

import numpy as np

from qatune.predict import decode, group_windows, predict, window_candidates

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
    answers = decode(CONTEXT, [s], [e], [OFFSETS], top_k=50, max_answer_length=30)
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


def test_null_answer_for_v2_models():
    s = np.array([9, 0, 0, 0, 0, 0, 0, 0.0])
    e = np.array([9, 0, 0, 0, 0, 0, 0, 0.0])
    answers = decode(CONTEXT, [s], [e], [OFFSETS], top_k=2, with_null=True)
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
    v2 = predict(CONTEXT, [s1, s2], [e1, e2], [OFFSETS, OFFSETS], top_k=20, with_null=True)
    empty = next(a for a in v2.answers if a.text == "")
    assert abs(v2.no_answer_probability - empty.probability) < 1e-12
    assert abs(v2.no_answer_probability - expected) < 1e-9  # the same number either way


def test_group_windows():
    groups = group_windows(np.array([0, 0, 1, 2, 2, 2]))
    assert [g.tolist() for g in groups] == [[0, 1], [2], [3, 4, 5]]

"""qatune.documents.dense: a passage is embedded by its sentences and scores as its best one."""

from __future__ import annotations

import numpy as np

from qatune.documents.dense import embed_passages, search, units


def test_a_passage_is_embedded_by_its_sentences():
    assert units("The box is red. It ships on Monday! Why? Nobody knows") == [
        "The box is red.",
        "It ships on Monday!",
        "Why?",
        "Nobody knows",
    ]
    assert units("no end mark at all") == ["no end mark at all"] and units("   ") == ["   "]

    def fake(texts, progress=None):  # a vector a text: its length, so each unit is seen
        return np.asarray([[len(t), 1.0] for t in texts], dtype=np.float32)

    vectors, counts = embed_passages(fake, ["One. Two two.", "Three"])
    assert counts.tolist() == [2, 1] and vectors[:, 0].tolist() == [4, 8, 5]


def test_a_passage_scores_as_its_best_sentence():
    east, north, west = np.eye(3, dtype=np.float32)
    # passage 0: two sentences (east, north); passage 1: one (west); passage 2: two (west, between)
    between = (east + north) / np.sqrt(2)
    vectors = np.stack([east, north, west, west, between])
    counts = np.asarray([2, 1, 2])
    (ids, scores), (ids_n, scores_n) = search(vectors, counts, np.stack([east, north]), k=3)
    assert ids.tolist() == [0, 2, 1] and np.allclose(scores, [1.0, 1 / np.sqrt(2), 0.0])
    assert ids_n[0] == 0 and scores_n[0] == 1.0
    # more questions than one block of them, and a k beyond the passages
    many = search(vectors, counts, np.tile(east, (130, 1)), k=10)
    assert len(many) == 130 and all(i.tolist() == [0, 2, 1] for i, _ in many)

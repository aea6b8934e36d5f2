"""The dense side of retrieval: all-MiniLM-L6-v2 sentence embeddings (its original job: the embedded
default model is a sentence-embedding model), mean-pooled over tokens and normalised.

Each sentence of a passage is embedded alone and a passage scores as its best sentence: the model was
trained on sentence pairs, and a question is usually about one sentence, whose meaning a whole
paragraph's mean vector dilutes. Measured on the 20,963-paragraph open-SQuAD collection
(bench/documents.py, gold paragraph in the top 5): dense 78.4% with one vector a passage, 83.5% by
sentences; fused with BM25 91.0% and 92.0%. Embedding the sentences takes about as long as embedding
the passages (the same tokens, shorter attention). The vectors are stored as float16 (which moves a
cosine by under 0.001) and searched in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qatune.documents.passages import sentences
from qatune.documents.records import Side
from qatune.models.embedding import DIMENSIONS, EMBEDDER, Embedder

__all__ = ["DIMENSIONS", "EMBEDDER", "Embedder", "embed_passages", "search", "units"]

QUESTION_BLOCK = 64  # questions scored at once: their similarities to every sentence are held together


def units(text: str) -> list[str]:
    """The pieces of a passage embedded alone: its sentences (the passage itself when it has none)."""
    return [text[s.start : s.end] for s in sentences(text, 0, len(text))] or [text]


def embed_passages(
    embedder: Callable[..., np.ndarray], texts: Sequence[str], progress: Callable[[int], Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every passage's sentence vectors, stacked in passage order, and how many each passage has."""
    pieces = [units(t) for t in texts]
    counts = np.asarray([len(p) for p in pieces], dtype=np.int32)
    flat = [u for p in pieces for u in p]
    vectors = embedder(flat, progress) if flat else np.zeros((0, DIMENSIONS), dtype=np.float32)
    return vectors, counts


def search(vectors: np.ndarray, counts: np.ndarray, questions: np.ndarray, k: int) -> list[Side]:
    """For each question vector its top `k` passage numbers and similarities (a passage's best sentence's
    cosine), best first; `vectors` are every passage's sentence vectors stacked, `counts` their numbers."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    k = min(k, len(counts))
    results = []
    for first in range(0, len(questions), QUESTION_BLOCK):
        similarity = questions[first : first + QUESTION_BLOCK] @ vectors.T
        for row in np.maximum.reduceat(similarity, starts, axis=1) if len(counts) else similarity[:, :0]:
            top = np.argpartition(-row, k - 1)[:k] if k < row.size else np.arange(row.size)
            top = top[np.argsort(-row[top], kind="stable")]
            results.append((top.astype(np.int64), row[top]))
    return results

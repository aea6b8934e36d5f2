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

EMBEDDER = "all-MiniLM-L6-v2"
DIMENSIONS = 384  # of its vectors
MAX_TOKENS = 256  # what the model was trained on (sentence_bert_config.json: max_seq_length)
BATCH = 32
QUESTION_BLOCK = 64  # questions scored at once: their similarities to every sentence are held together


class Embedder:
    """Unit vectors of texts, from the embedded all-MiniLM-L6-v2 (torch; `dtype` auto: bfloat16 where the
    CPU has AMX/AVX512-BF16, else float32)."""

    def __init__(self, dtype: str = "auto") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from qatune.hardware import inference_dtype
        from qatune.models.loading import default_model_path

        dtype = inference_dtype(dtype)
        path = default_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=getattr(torch, dtype)).eval()

    def __call__(self, texts: Sequence[str], progress: Callable[[int], Any] | None = None) -> np.ndarray:
        """One float32 unit vector a text, (len(texts), 384); longest first in batches, so padding is small."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for first in range(0, len(order), BATCH):
                chunk = order[first : first + BATCH]
                batch = self.tokenizer(
                    [texts[i] for i in chunk], truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt"
                )
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[chunk] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
                if progress is not None:
                    progress(len(chunk))
        return out


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

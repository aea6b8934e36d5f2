"""The dense side of retrieval: all-MiniLM-L6-v2 sentence embeddings (its original job: the embedded
default model is a sentence-embedding model), mean-pooled over tokens and normalised, so a question's
similarity to a passage is one dot product."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

EMBEDDER = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # what the model was trained on (sentence_bert_config.json: max_seq_length)
BATCH = 32


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


def search(embeddings: np.ndarray, questions: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each question vector its top `k` passage numbers and cosine similarities, best first."""
    similarity = questions @ embeddings.T
    k = min(k, embeddings.shape[0])
    results = []
    for row in similarity:
        top = np.argpartition(-row, k - 1)[:k] if k < row.size else np.arange(row.size)
        top = top[np.argsort(-row[top], kind="stable")]
        results.append((top.astype(np.int64), row[top]))
    return results

"""Sentence embeddings from the embedded all-MiniLM-L6-v2 (the default model is a sentence-embedding model):
mean-pooled over tokens and normalised. Retrieval's dense side (`documents.dense`) and the adversarial
negatives' same-type names (`data.adversarial`) use them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from qatune.data.adversarial import Perturber
    from qatune.data.squad import Example

EMBEDDER = "all-MiniLM-L6-v2"
DIMENSIONS = 384  # of its vectors
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


class WordPieceEmbedder:
    """Unit vectors of short texts (names) from all-MiniLM-L6-v2's input word-piece table, mean-pooled: no
    transformer pass, so about a thousand times faster than `Embedder` (150 names/s on 2 cores) and
    close enough to tell a person's name from a place's or a date's (data.adversarial)."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        """The table of `embedder`'s model where given (loaded once), else of the embedded model."""
        if embedder is None:
            from transformers import AutoModel, AutoTokenizer

            from qatune.models.loading import default_model_path

            path = default_model_path()
            self.tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
        else:
            self.tokenizer, model = embedder.tokenizer, embedder.model
        table = model.get_input_embeddings().weight.detach().float().numpy()
        self.table = table / np.linalg.norm(table, axis=1, keepdims=True).clip(1e-6)

    def __call__(self, texts: Sequence[str], progress: Callable[[int], Any] | None = None) -> np.ndarray:
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        for i, pieces in enumerate(ids):
            if pieces:
                out[i] = self.table[pieces].mean(0)
        out /= np.linalg.norm(out, axis=1, keepdims=True).clip(1e-6)
        if progress is not None:
            progress(len(texts))
        return out


def perturber_for(pool: Sequence[Example], kinds: Sequence[str]) -> Perturber:
    """data.adversarial's Perturber of `pool`, with the sentence model (names) and the word-piece table
    (the words around them) when `entity` is one of `kinds`."""
    from qatune.data.adversarial import Perturber

    if "entity" not in kinds:
        return Perturber(pool)
    embedder = Embedder()
    return Perturber(pool, embedder, WordPieceEmbedder(embedder))

"""BM25 over a list of texts (bm25s, with Snowball's English stemmer and stop words): the lexical side
of a document index (`documents`, saved in and loaded from its folder), and the retriever that mines
unanswerable training questions (`data.negatives`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    tokens: list[list[str]] = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False
    )
    return tokens


class Lexical:
    """BM25 over a fixed list of passages: `search` gives passage numbers and scores, best first."""

    def __init__(self, retriever: Any) -> None:
        self.retriever = retriever

    @classmethod
    def build(cls, texts: Sequence[str]) -> Lexical:
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(_tokens(texts), show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> Lexical:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), show_progress=False, verbosity=0))

    def search(self, questions: Sequence[str], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each question its top `k` passage numbers and BM25 scores (passages that share no word with
        it are left out)."""
        count = int(self.retriever.scores["num_docs"])
        ids, scores = self.retriever.retrieve(_tokens(questions), k=min(k, count), show_progress=False, n_threads=0)
        return [(i[s > 0].astype(np.int64), s[s > 0]) for i, s in zip(ids, scores)]

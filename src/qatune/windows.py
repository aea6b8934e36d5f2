"""Tokenise (question, context) pairs into overlapping windows with character offsets and span labels.

``doc_stride`` is the *overlap* between consecutive windows of one context, in tokens (the
meaning of ``stride`` in Hugging Face tokenizers and ``run_qa.py``), not the step between them.
Works for BERT-style (token_type_ids) and RoBERTa-style (byte-level BPE, no token_type_ids)
fast tokenizers alike, because it relies only on ``sequence_ids`` and offset mappings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qatune.data import Example
from qatune.errors import ConfigError


@dataclass(frozen=True)
class WindowConfig:
    """How contexts are cut into model inputs."""

    max_seq_length: int = 256
    doc_stride: int = 96
    max_query_length: int = 64

    def check(self) -> None:
        if self.max_seq_length < 16:
            raise ConfigError(f"max_seq_length must be at least 16, got {self.max_seq_length}")
        room = self.max_seq_length - self.max_query_length - 4  # 4 = special tokens of a pair, worst case
        if room < 8:
            raise ConfigError(f"max_query_length ({self.max_query_length}) leaves too little room for the context "
                              f"in max_seq_length ({self.max_seq_length})")
        if not 0 <= self.doc_stride < room:
            raise ConfigError(f"doc_stride (the overlap between windows) must be in [0, {room}) for "
                              f"max_seq_length {self.max_seq_length} and max_query_length {self.max_query_length}, "
                              f"got {self.doc_stride}")


@dataclass
class Windows:
    """Model inputs for every window, plus what is needed to map predictions back to text."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    example_index: np.ndarray  # window -> index of its example
    offsets: list[np.ndarray]  # window -> (n_tokens, 2) character spans; -1 outside the context
    start_positions: np.ndarray  # gold start token (0, the CLS token, when the answer is not in the window)
    end_positions: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    def item(self, i: int, labels: bool = True) -> dict[str, object]:
        """One window as a dict of lists, the form collators expect."""
        out: dict[str, object] = {"input_ids": self.input_ids[i]}
        if self.token_type_ids is not None:
            out["token_type_ids"] = self.token_type_ids[i]
        if labels:
            out["start_positions"] = int(self.start_positions[i])
            out["end_positions"] = int(self.end_positions[i])
        return out


def _truncate_questions(questions: Sequence[str], tokenizer, max_query_length: int) -> list[str]:
    """Cut each question after ``max_query_length`` tokens (at a character boundary)."""
    questions = [q.strip() for q in questions]
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for question, offsets in zip(questions, enc["offset_mapping"]):
        out.append(question[: offsets[max_query_length - 1][1]] if len(offsets) > max_query_length else question)
    return out


_SPACES = np.array([ord(c) for c in " \t\n\r\x0b\x0c\xa0\u2009\u200a\u202f\u3000"], dtype=np.uint32)


def _space_mask(context: str) -> np.ndarray:
    """Whether each character of `context` is whitespace (vectorised via UTF-32 code points)."""
    codes = np.frombuffer(context.encode("utf-32-le"), dtype=np.uint32)
    return np.append(np.isin(codes, _SPACES), False)


def _trim_leading_spaces(window: np.ndarray, spaces: np.ndarray) -> None:
    """Move token starts past whitespace: byte-level BPE tokenizers include the leading space in the
    first token of an overflow window (its offsets are not trimmed there), which would put a space in answers."""
    ctx = window[:, 0] >= 0
    for _ in range(4):
        move = ctx & (window[:, 0] < window[:, 1]) & spaces[np.clip(window[:, 0], 0, None)]
        if not move.any():
            return
        window[move, 0] += 1


def _label(offsets: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """Token span covering characters [start, end), or (0, 0) when it is not wholly in this window."""
    ctx = np.flatnonzero(offsets[:, 0] >= 0)
    if start < offsets[ctx[0], 0] or end > offsets[ctx[-1], 1]:
        return 0, 0
    first = ctx[np.argmax(offsets[ctx, 1] > start)]
    last = ctx[len(ctx) - 1 - np.argmax(offsets[ctx[::-1], 0] < end)]
    return int(first), int(last)


def tokenize_windows(examples: Sequence[Example], tokenizer, config: WindowConfig = WindowConfig()) -> Windows:
    """Tokenise examples into windows; labels point at the first gold answer (CLS if absent)."""
    config.check()
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("qatune needs a fast (Rust) tokenizer for character offsets")
    questions = _truncate_questions([e.question for e in examples], tokenizer, config.max_query_length)
    enc = tokenizer(questions, [e.context for e in examples], truncation="only_second",
                    max_length=config.max_seq_length, stride=config.doc_stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding=False)
    example_index = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
    offsets, starts, ends = [], [], []
    spaces: dict[int, np.ndarray] = {}
    for i, spans in enumerate(enc["offset_mapping"]):
        seq = np.array([s == 1 for s in enc.sequence_ids(i)])
        window = np.asarray(spans, dtype=np.int32).reshape(-1, 2)
        window[~seq] = -1
        example = examples[example_index[i]]
        if example_index[i] not in spaces:
            spaces = {example_index[i]: _space_mask(example.context)}
        _trim_leading_spaces(window, spaces[example_index[i]])
        offsets.append(window)
        if example.answers:
            start = example.answer_starts[0]
            s, e = _label(window, start, start + len(example.answers[0]))
        else:
            s, e = 0, 0
        starts.append(s)
        ends.append(e)
    types = enc.get("token_type_ids") if "token_type_ids" in tokenizer.model_input_names else None
    return Windows(enc["input_ids"], types, example_index, offsets,
                   np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64))

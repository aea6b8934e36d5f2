"""Tokenise (question, context) pairs into overlapping windows with character offsets and span labels.

``doc_stride`` is the *overlap* between consecutive windows of one context, in tokens (the
meaning of ``stride`` in Hugging Face tokenizers and ``run_qa.py``), not the step between them.
Works for BERT-style (token_type_ids) and RoBERTa-style (byte-level BPE, no token_type_ids)
fast tokenizers alike, because it relies only on ``sequence_ids`` and offset mappings.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qatune.data.squad import Example, QADataset, env_count
from qatune.errors import ConfigError, DataError, ModelError
from qatune.io import read_json
from qatune.layout import CONFIG_FILE, ONNX_META


@dataclass(frozen=True)
class WindowConfig:
    """How contexts are cut into model inputs."""

    max_seq_length: int = 256
    doc_stride: int = 96
    max_query_length: int = 64
    # Read each question as "TITLE: question", the title of its document (article) in front: an answerable
    # question often names the article's subject, which its paragraph leaves implicit ("she", "the city").
    # Saved with the model, so everything that answers with it reads titles the same way.
    use_title: bool = False

    def updated(
        self, max_seq_length: int | None = None, doc_stride: int | None = None, max_query_length: int | None = None
    ) -> WindowConfig:
        """This config with each size given that is not None (command-line flags over saved settings)."""
        return WindowConfig(
            self.max_seq_length if max_seq_length is None else max_seq_length,
            self.doc_stride if doc_stride is None else doc_stride,
            self.max_query_length if max_query_length is None else max_query_length,
            self.use_title,
        )

    def check(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "use_title":
                if not isinstance(value, bool):
                    raise ConfigError(f"use_title must be true or false, got {value!r}")
            elif not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{f.name} must be an integer, got {value!r}")
        if self.max_query_length < 1:
            raise ConfigError(f"max_query_length must be at least 1, got {self.max_query_length}")
        if self.max_seq_length < 16:
            raise ConfigError(f"max_seq_length must be at least 16, got {self.max_seq_length}")
        room = self.max_seq_length - self.max_query_length - 4  # 4 = special tokens of a pair, worst case
        if room < 8:
            raise ConfigError(
                f"max_query_length ({self.max_query_length}) leaves too little room for the context "
                f"in max_seq_length ({self.max_seq_length})"
            )
        if not 0 <= self.doc_stride < room:
            raise ConfigError(
                f"doc_stride (the overlap between windows) must be in [0, {room}) for "
                f"max_seq_length {self.max_seq_length} and max_query_length {self.max_query_length}, "
                f"got {self.doc_stride}"
            )

    def checked_for(self, positions: int | None) -> WindowConfig:
        """This config, checked and refused when longer than the model's position table (`positions`;
        None: no limit known), where it would crash inside the model."""
        self.check()
        if positions is not None and self.max_seq_length > positions:
            raise ConfigError(
                f"max_seq_length {self.max_seq_length} is longer than this model's inputs can be ({positions} "
                f"tokens); use --max-seq-length {positions} or less"
            )
        return self


def saved_window(model: str | Path) -> WindowConfig:
    """The window settings a model folder was trained (or exported) with; defaults for anything else.

    A model trained at max_seq_length 192 is then answered at 192 by `ask`, `serve` and studies.
    """
    folder = Path(model)
    for name, section in ((ONNX_META, "window"), (CONFIG_FILE, "config")):
        if (folder / name).is_file():
            saved: Any = read_json(folder / name, "model settings file", ModelError)
            try:
                values = saved[section]
                window = WindowConfig(
                    **{f.name: values.get(f.name, f.default) for f in dataclasses.fields(WindowConfig)}
                )
                window.check()
            except (KeyError, TypeError, AttributeError, ConfigError) as exc:
                raise ModelError(
                    f"{folder / name}: damaged or not a qatune file ({type(exc).__name__}: {exc})"
                ) from None
            return window
    return WindowConfig()


@dataclass
class Windows:
    """Model inputs for every window, plus what is needed to map predictions back to text."""

    input_ids: list[np.ndarray]  # int32 arrays: compact, unlike lists of Python ints
    token_type_ids: list[np.ndarray] | None
    example_index: np.ndarray  # window -> index of its example
    offsets: list[np.ndarray]  # window -> (n_tokens, 2) character spans; -1 outside the context
    start_positions: np.ndarray  # gold start token (0, the CLS token, when the answer is not in the window)
    end_positions: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, object]:
        return self.item(i)

    def of_examples(self, keep: np.ndarray) -> Windows:
        """The windows of the examples where `keep` (bool per example) is true, the kept examples numbered
        0, 1, ... in their order (as if only they had been tokenised)."""
        chosen = np.flatnonzero(keep[self.example_index])
        renumbered = np.cumsum(keep) - 1
        return Windows(
            [self.input_ids[i] for i in chosen],
            None if self.token_type_ids is None else [self.token_type_ids[i] for i in chosen],
            renumbered[self.example_index[chosen]],
            [self.offsets[i] for i in chosen],
            self.start_positions[chosen],
            self.end_positions[chosen],
        )

    def item(self, i: int, labels: bool = True) -> dict[str, object]:
        """One window as a dict of lists, the form collators expect."""
        out: dict[str, object] = {"input_ids": self.input_ids[i].tolist()}
        if self.token_type_ids is not None:
            out["token_type_ids"] = self.token_type_ids[i].tolist()
        if labels:
            out["start_positions"] = int(self.start_positions[i])
            out["end_positions"] = int(self.end_positions[i])
        return out


# A title is cut to this many tokens (a quarter of max_query_length if less), leaving the question room.
TITLE_TOKENS = 16


def title_text(title: str) -> str:
    """A title as words: a wiki-style slug (`Saint_Barth%C3%A9lemy`, as SQuAD's titles) decoded."""
    title = " ".join(title.split())
    return title if " " in title else urllib.parse.unquote(title).replace("_", " ").strip()


def _questions(examples: Sequence[Example], tokenizer: Any, config: WindowConfig) -> list[str]:
    """The question segment of each example: the question, after its cut title with `use_title`, cut to
    `max_query_length` tokens."""
    questions = [e.question.strip() for e in examples]
    if config.use_title:
        room = min(TITLE_TOKENS, config.max_query_length // 4)  # the question keeps most of the segment
        titles = _truncate_questions([title_text(e.title) for e in examples], tokenizer, room)
        questions = [f"{t}: {q}" if t else q for t, q in zip(titles, questions)]
    return _truncate_questions(questions, tokenizer, config.max_query_length)


def _truncate_questions(questions: Sequence[str], tokenizer: Any, max_query_length: int) -> list[str]:
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
    if ctx.size == 0:  # a context with no tokens at all (only zero-width or control characters)
        return 0, 0
    if start < offsets[ctx[0], 0] or end > offsets[ctx[-1], 1]:
        return 0, 0
    first = ctx[np.argmax(offsets[ctx, 1] > start)]
    last = ctx[len(ctx) - 1 - np.argmax(offsets[ctx[::-1], 0] < end)]
    return int(first), int(last)


def _window_offsets(
    spans: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None], spaces: np.ndarray
) -> np.ndarray:
    """A window's character spans as an (n_tokens, 2) array, -1 outside the context, leading spaces trimmed."""
    window = np.asarray(spans, dtype=np.int32).reshape(-1, 2)
    window[np.array([s != 1 for s in sequence_ids])] = -1
    _trim_leading_spaces(window, spaces)
    return window


def _tokenize_chunk(
    examples: Sequence[Example], tokenizer: Any, config: WindowConfig, with_types: bool
) -> list[tuple[Any, ...]]:
    """(input_ids, token_type_ids, offsets, example index, start, end) of every window of a chunk."""
    questions = _questions(examples, tokenizer, config)
    enc = tokenizer(
        questions,
        [e.context for e in examples],
        truncation="only_second",
        max_length=config.max_seq_length,
        stride=config.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    rows, last, spaces = [], -1, np.empty(0, dtype=bool)
    for i, spans in enumerate(enc["offset_mapping"]):
        index = enc["overflow_to_sample_mapping"][i]
        example = examples[index]
        if index != last:  # windows of one example are consecutive
            last, spaces = index, _space_mask(example.context)
        window = _window_offsets(spans, enc.sequence_ids(i), spaces)
        s, e = 0, 0
        if example.answers:
            s, e = _label(window, example.answer_starts[0], example.answer_starts[0] + len(example.answers[0]))
        types = np.asarray(enc["token_type_ids"][i], dtype=np.int8) if with_types else None
        rows.append((np.asarray(enc["input_ids"][i], dtype=np.int32), types, window, index, s, e))
    return rows


def tokenize_windows(
    examples: Sequence[Example], tokenizer: Any, config: WindowConfig = WindowConfig(), chunk: int = 1024
) -> Windows:
    """Tokenise examples into windows; labels point at the first gold answer (CLS if absent).

    Works in chunks so that the tokenizer's Python-list output for a large data set never
    exists all at once (it costs several GB for all of SQuAD train).
    """
    config.check()
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("qatune needs a fast (Rust) tokenizer for character offsets")
    with_types = "token_type_ids" in tokenizer.model_input_names
    rows: list[tuple[Any, ...]] = []
    for base in range(0, len(examples), chunk):
        chunk_rows = _tokenize_chunk(examples[base : base + chunk], tokenizer, config, with_types)
        rows.extend((ids, types, offsets, base + index, s, e) for ids, types, offsets, index, s, e in chunk_rows)
    ids, types, offsets, index, starts, ends = zip(*rows) if rows else ([], [], [], [], [], [])
    return Windows(
        list(ids),
        list(types) if with_types else None,
        np.asarray(index, dtype=np.int64),
        list(offsets),
        np.asarray(starts, dtype=np.int64),
        np.asarray(ends, dtype=np.int64),
    )


# The work bound of one question: its windows, counted after tokenising (the model's time grows with
# windows; the character guard alone lets a context of digits or Chinese cost 2.7-4.7x the windows of
# English prose). 1024 windows is about 40 s of a forward pass on 2 CPU cores.
MAX_WINDOWS_ENV = "QATUNE_MAX_WINDOWS"
DEFAULT_MAX_WINDOWS = 1024


def max_windows() -> int:
    """The work bound in force: $QATUNE_MAX_WINDOWS, else 1,024 windows a question."""
    return env_count(MAX_WINDOWS_ENV, DEFAULT_MAX_WINDOWS, "windows", ConfigError)


def check_windows(windows: Windows, dataset: QADataset, seq_length: int) -> None:
    """Raise DataError naming the first question of `dataset` whose context makes more windows than the
    work bound (`max_windows()`)."""
    limit = max_windows()
    examples = dataset.examples
    counts = np.bincount(windows.example_index, minlength=len(examples))
    over = np.flatnonzero(counts > limit)
    if over.size:
        first = int(over[0])
        raise DataError(
            f"{dataset.source}: question {examples[first].id!r}: its context makes {counts[first]} model windows of up "
            f"to {seq_length} tokens, over the limit of {limit} a question; split the context, or raise "
            f"${MAX_WINDOWS_ENV}"
        )

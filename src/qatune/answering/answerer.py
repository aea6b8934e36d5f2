"""The one answering seam: a backend turns windows into logits; one answerer does the rest.

torch (`torch_backend.Answerer`) and onnxruntime (`onnx_backend.OnnxAnswerer`) differ only in how windows
become start/end logits. Checking the questions, cutting windows and decoding spans is `SpanAnswerer`, the
same code for both, so both answer alike. numpy-only: the ONNX path never imports torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from qatune.answering.decoding import Answer, Decoding, Logits, Prediction, group_windows, predict
from qatune.data.squad import Example, question_examples
from qatune.data.windows import WindowConfig, Windows, tokenize_windows
from qatune.errors import ConfigError, DataError, NonFiniteOutputs, QatuneError

Progress = Callable[[int], None]


class WindowLogits(Protocol):
    """Windows in, logits out (trimmed to each window's length), `progress` told of each batch's windows.
    With `with_loss` a backend that can also sets `Logits.loss`, the mean loss of the windows' gold spans."""

    def __call__(self, windows: Windows, progress: Progress | None = None, with_loss: bool = False) -> Logits: ...


def pad_batch(windows: Windows, idx: np.ndarray, names: Sequence[str], pad_id: int) -> dict[str, np.ndarray]:
    """Windows `idx` as int64 arrays padded to the longest of them (input_ids with `pad_id`, an
    attention_mask, token_type_ids when the model takes them): the inputs both backends feed."""
    width = max(len(windows.input_ids[i]) for i in idx)
    feeds = {name: np.zeros((len(idx), width), dtype=np.int64) for name in names}
    feeds["input_ids"][:] = pad_id
    for row, i in enumerate(idx):
        n = len(windows.input_ids[i])
        feeds["input_ids"][row, :n] = windows.input_ids[i]
        feeds["attention_mask"][row, :n] = 1
        if "token_type_ids" in feeds and windows.token_type_ids is not None:
            feeds["token_type_ids"][row, :n] = windows.token_type_ids[i]
    return feeds


def batched_logits(
    windows: Windows,
    batch_size: int,
    run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    progress: Callable[[int], None] | None = None,
) -> Logits:
    """Logits of every window through `run` (window indices -> padded start/end logits), in batches of
    similar length so padding stays small, each window's logits trimmed to its length."""
    order = np.argsort([len(ids) for ids in windows.input_ids], kind="stable")
    starts: list[np.ndarray] = [np.empty(0)] * len(windows)
    ends: list[np.ndarray] = [np.empty(0)] * len(windows)
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        s, e = run(idx)
        for row, i in enumerate(idx):
            n = len(windows.input_ids[i])
            starts[i], ends[i] = s[row, :n], e[row, :n]
            if not (np.isfinite(starts[i]).all() and np.isfinite(ends[i]).all()):
                # else NaN scores decode to answers with probability 1.0, and JSON output is invalid
                raise NonFiniteOutputs(
                    "the model's outputs are not finite numbers (NaN or infinity): its weights are damaged; "
                    "train, download or export it again"
                )
        if progress:
            progress(len(idx))
    return Logits(starts, ends)


JOINT_SEPARATOR = "\n\n"  # between the contexts of a joint query, in the one context they are decoded as


@dataclass(frozen=True)
class Query:
    """One caller's questions and how their answers are decoded (None: the model's own decoding).

    `joint`: the pairs are one question asked of several contexts (retrieved passages): each context is
    windowed alone, and all are decoded as one context, the contexts joined by JOINT_SEPARATOR, so every
    span of every context shares one softmax and equal answers merge across them; one Prediction, its
    spans in that joined text. `priors` (joint only): one score a context, added to every span of it (not
    to the null answer), so a context's answers count for more or less by where it came from (the
    documents reader: the retrieval score). `titles`: one a pair, the title of its context's document,
    read by a model trained with titles (`WindowConfig.use_title`); None: no titles."""

    pairs: Sequence[tuple[str, str]]
    top_k: int = 3
    decoding: Decoding | None = None
    joint: bool = False
    priors: Sequence[float] | None = None
    titles: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.priors is not None and (
            len(self.priors) != len(self.pairs) or not all(math.isfinite(p) for p in self.priors)
        ):
            raise ConfigError(f"a query's priors: expected {len(self.pairs)} finite numbers, one a context")
        if self.titles is not None and (isinstance(self.titles, str) or len(self.titles) != len(self.pairs)):
            raise ConfigError(f"a query's titles: expected a sequence of {len(self.pairs)} titles, one a context")


@dataclass(frozen=True)
class WindowLimit:
    """The most model windows one query may cost, counted after tokenising: the model's time grows with
    windows, not characters (a context of digits or Chinese makes several times the windows of English
    prose of the same length). `flag` names the setting in the error, `per` what one query is."""

    windows: int
    flag: str = "max_windows"
    per: str = "request"

    def apply(
        self, checked: list[list[Example] | QatuneError], windows: Windows, seq_length: int
    ) -> tuple[list[list[Example] | QatuneError], Windows]:
        """Each query over the limit replaced by the error saying so, and the windows of the rest."""
        per_example = np.bincount(windows.example_index, minlength=sum(len(c) for c in checked if isinstance(c, list)))
        keep: list[bool] = []
        out: list[list[Example] | QatuneError] = []
        first = 0
        for c in checked:
            if isinstance(c, QatuneError):
                out.append(c)
                continue
            count = int(per_example[first : first + len(c)].sum())
            first += len(c)
            fits = count <= self.windows
            keep += [fits] * len(c)
            out.append(c if fits else DataError(self.message(count, seq_length)))
        return out, windows.of_examples(np.array(keep, dtype=bool))

    def message(self, count: int, seq_length: int) -> str:
        one = self.per == "question"  # a local user may raise the bound; a client can only split
        subject = "the context and question" if one else "the contexts and questions"
        fix = f"shorten the context or raise {self.flag}" if one else "split them or shorten the contexts"
        return (
            f"{subject} make {count} model windows of up to {seq_length} tokens; at most "
            f"{self.windows} per {self.per} ({self.flag}): {fix}"
        )


class SpanAnswerer:
    """Top-k answers with probabilities and character spans, over any `WindowLogits` backend."""

    def __init__(
        self,
        tokenizer: Any,
        logits: WindowLogits,
        window: WindowConfig,
        decoding: Decoding = Decoding(),
        max_context_chars: int | None = None,
        max_windows: WindowLimit | None = None,
    ) -> None:
        self.tokenizer, self.logits, self.window, self.decoding = tokenizer, logits, window, decoding
        self.max_context_chars = max_context_chars  # None: the size guard, $QATUNE_MAX_CONTEXT_CHARS or 100,000
        self.max_windows = max_windows  # the work one query may cost: None, unbounded
        self.fresh_head = False  # whether the model's QA head is untrained (a backend that knows sets it)

    def windows_of(self, examples: Sequence[Example]) -> Windows:
        """The windows this answerer cuts `examples` into (labelled with their gold spans)."""
        return tokenize_windows(examples, self.tokenizer, self.window)

    def decoding_for(self, max_answer_length: int | None = None) -> Decoding:
        """This answerer's decoding, with another longest answer if given."""
        if max_answer_length is None:
            return self.decoding
        return dataclasses.replace(self.decoding, max_answer_length=max_answer_length)

    def ask(self, context: str, question: str, top_k: int = 3, title: str = "") -> list[Answer]:
        """Up to `top_k` distinct answers with probabilities and character spans (`title`: of the context's
        document, read by a model trained with titles)."""
        return self.ask_many([(context, question)], top_k, [title])[0]

    def ask_many(
        self, pairs: Sequence[tuple[str, str]], top_k: int = 3, titles: Sequence[str] | None = None
    ) -> list[list[Answer]]:
        """Batched `ask` for many (context, question) pairs (and their documents' titles)."""
        return [p.answers for p in self.predict_many(pairs, top_k, titles=titles)]

    def predict_many(
        self,
        pairs: Sequence[tuple[str, str]],
        top_k: int = 3,
        decoding: Decoding | None = None,
        titles: Sequence[str] | None = None,
    ) -> list[Prediction]:
        """`ask_many` plus each question's no-answer probability."""
        result = self.predict_queries([Query(pairs, top_k, decoding, titles=titles)])[0]
        if isinstance(result, QatuneError):
            raise result
        return result

    def predict_queries(self, queries: Sequence[Query]) -> list[list[Prediction] | QatuneError]:
        """Several callers' questions through one forward pass (the server's micro-batches): each
        query gets its predictions, or the error that refused its input without failing the others."""
        checked: list[list[Example] | QatuneError] = []
        for query in queries:
            try:
                checked.append(question_examples(query.pairs, self.max_context_chars, query.titles))
            except QatuneError as exc:
                checked.append(exc)
        examples = [e for c in checked if not isinstance(c, QatuneError) for e in c]
        if not examples:
            return [c if isinstance(c, QatuneError) else [] for c in checked]
        windows = tokenize_windows(examples, self.tokenizer, self.window)
        if self.max_windows is not None:
            checked, windows = self.max_windows.apply(checked, windows, self.window.max_seq_length)
        if not len(windows):
            return [c if isinstance(c, QatuneError) else [] for c in checked]
        logits = self.logits(windows)
        groups = iter(group_windows(windows.example_index))

        def answer(examples: list[Example], query: Query) -> Prediction:
            """The examples' windows (the next groups: examples were windowed in order), decoded as one
            context: a single example's own, or a joint query's contexts joined."""
            start, end, offsets, context = [], [], [], ""
            for number, example in enumerate(examples):
                prior = query.priors[number] if query.joint and query.priors else 0.0
                for i in next(groups):
                    # a span scores start + end: shifting every start but the null's (index 0) shifts each span once
                    s = logits.start[i]
                    start.append(np.concatenate([s[:1], s[1:] + prior]) if prior else s)
                    end.append(logits.end[i])
                    offsets.append(np.where(windows.offsets[i] >= 0, windows.offsets[i] + len(context), -1))
                context += example.context + (JOINT_SEPARATOR if query.joint else "")
            return predict(context, start, end, offsets, query.top_k, query.decoding or self.decoding)

        def answers(examples: list[Example], query: Query) -> list[Prediction]:
            return [answer(examples, query)] if query.joint else [answer([e], query) for e in examples]

        return [c if isinstance(c, QatuneError) else answers(c, q) for q, c in zip(queries, checked)]

"""The models a server answers with: each opened by, and only ever run on, its micro-batcher's thread."""

from dataclasses import dataclass
from typing import Any

from qatune.answering.answerer import Query
from qatune.answering.decoding import Decoding, Prediction
from qatune.documents.records import PassageIndex
from qatune.serving.config import ServeConfig
from qatune.serving.responses import ModelAnswers


@dataclass
class Loaded:
    """One opened model: its answerer, the backend it runs on, its name, and the thread that calls it."""

    answerer: Any
    backend: str
    name: str
    batcher: Any  # batching.MicroBatcher: the one thread that calls this model


def _open(model: str, config: ServeConfig) -> Loaded:
    """The answerer of `model` (ONNX folder or torch), with the server's limits as its size guard and
    the windows one request may cost as its work bound, opened by the micro-batcher's thread: the one
    thread that runs it."""
    from qatune.answering.answerer import SpanAnswerer, WindowLimit
    from qatune.answering.batching import MicroBatcher
    from qatune.answering.factory import open_answerer
    from qatune.answering.onnx_backend import is_exported
    from qatune.hardware import inference_dtype

    chars = max(config.max_context_chars, config.max_question_chars)
    backend: list[str] = []

    def opener() -> SpanAnswerer:
        dtype = "float32" if is_exported(model) else inference_dtype(config.dtype)  # an export: no torch
        limit = WindowLimit(config.max_request_windows, "--max-request-windows")
        answerer, name = open_answerer(model, seed=config.seed, max_context_chars=chars, dtype=dtype, max_windows=limit)
        backend.append(name)
        return answerer

    batcher = MicroBatcher(opener, config.batch_questions, config.batch_wait_ms)
    return Loaded(batcher.answerer, backend[0], model, batcher)


PROBE = ("Earth is the third planet from the Sun.", "Which planet is Earth?")


class Models:
    """The loaded answerers (primary and optional comparison), each behind its micro-batcher."""

    def __init__(self) -> None:
        self.loaded: dict[str, Loaded] = {}
        self.index: PassageIndex | None = None  # with `serve --index`: a folder or a PostgreSQL index
        self.ready = False

    def load(self, config: ServeConfig) -> None:
        """Open the models and answer one question with each: a model that cannot answer (damaged weights
        giving NaN) is an error here, before the server takes requests (and the first request is warm)."""
        if config.index:  # first: a path that is not an index is an error before any model loads
            from qatune.documents.backends import open_index

            self.index = open_index(config.index)
            self.index.search(["probe"], 1)  # the embedder loaded and warm before the first request
        self.loaded["primary"] = _open(config.model, config)
        if config.compare_with:
            self.loaded["compare"] = _open(config.compare_with, config)
        for role in self.loaded:
            self.predict(role, [PROBE], 1)
        self.ready = True

    def predict(
        self,
        role: str,
        pairs: list[tuple[str, str]],
        top_k: int,
        decoding: Decoding | None = None,
        titles: list[str] | None = None,
    ) -> list[Prediction]:
        """The predictions of the model in `role` for (context, question) pairs (and their documents' titles),
        through its batcher."""
        predictions: list[Prediction] = self.loaded[role].batcher.ask(Query(pairs, top_k, decoding, titles=titles))
        return predictions

    def ask(
        self, role: str, pairs: list[tuple[str, str]], top_k: int, titles: list[str] | None = None
    ) -> list[ModelAnswers]:
        """`predict`, as the API's per-model answers (named after the model)."""
        found = self.predict(role, pairs, top_k, titles=titles)
        return [ModelAnswers(model=self.loaded[role].name, **p.to_dict()) for p in found]

    def close(self) -> None:
        """Stop every batcher's thread and forget the models (the server is no longer ready)."""
        for loaded in self.loaded.values():
            loaded.batcher.close()
        self.loaded.clear()
        self.ready = False

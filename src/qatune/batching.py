"""Micro-batching: concurrent callers' questions go through the model together, each gets its own answers.

Why: the server used to serialise requests behind a lock, so with 8 clients each waited for the 7
before it, one small forward pass at a time. Here one thread owns the model; a request queues its
questions, the thread takes everything queued (waiting up to `wait_ms` for more when it has less than
`max_questions`), answers it in one `predict_queries` call and hands each caller its part. A batch
of 1 (`max_questions=1`) is the serialised behaviour, kept for comparison (bench/serve.py).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from qatune.answering import Query, SpanAnswerer
from qatune.errors import QatuneError
from qatune.predict import Prediction


@dataclass
class _Pending:
    query: Query
    future: Future


class MicroBatcher:
    """Answers `Query`s from many threads with one model thread; `close()` stops it."""

    def __init__(self, answerer: SpanAnswerer, max_questions: int = 32, wait_ms: float = 5.0) -> None:
        if max_questions < 1 or not 0 <= wait_ms <= 1000:
            raise ValueError(f"max_questions >= 1 and 0 <= wait_ms <= 1000, got {max_questions}, {wait_ms}")
        self.answerer, self.max_questions, self.wait = answerer, max_questions, wait_ms / 1000
        self.queue: queue.Queue[_Pending | None] = queue.Queue()
        self.batches = 0  # forward passes made, for tests and logs
        self.held: _Pending | None = None  # taken from the queue but did not fit: first of the next batch
        self.thread = threading.Thread(target=self._loop, name="qatune-batcher", daemon=True)
        self.thread.start()

    def ask(self, query: Query) -> list[Prediction]:
        """The predictions of `query` (blocking); its input error is raised here, in the caller."""
        pending = _Pending(query, Future())
        self.queue.put(pending)
        result = pending.future.result()
        if isinstance(result, QatuneError):
            raise result
        return result

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        """`first` plus what else arrives in time and fits; and whether the batcher was closed."""
        batch, questions = [first], len(first.query.pairs)
        deadline = time.monotonic() + self.wait
        while questions < self.max_questions:
            try:
                item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            if questions + len(item.query.pairs) > self.max_questions:
                self.held = item
                break
            batch.append(item)
            questions += len(item.query.pairs)
        return batch, False

    def _loop(self) -> None:
        closed = False
        while not closed:
            first, self.held = self.held or self.queue.get(), None
            if first is None:
                return
            batch, closed = self._collect(first)
            try:
                results = self.answerer.predict_queries([p.query for p in batch])
            except BaseException as exc:  # noqa: BLE001  # the callers raise it, not this thread
                for pending in batch:
                    pending.future.set_exception(exc)
                continue
            self.batches += 1
            for pending, result in zip(batch, results):
                pending.future.set_result(result)

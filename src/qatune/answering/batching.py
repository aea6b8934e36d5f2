"""Micro-batching: concurrent callers' questions go through the model together, each gets its own answers.

Why: the server used to serialise requests behind a lock, so with 8 clients each waited for the 7
before it, one small forward pass at a time. Here one thread owns the model; a request queues its
questions, the thread takes everything queued and answers it in one `predict_queries` call, handing
each caller its part. A batch of 1 (`max_questions=1`) is the serialised behaviour, kept for
comparison (bench/serve.py).

How long to wait for more: until as many requests have arrived as are expected (or `max_questions`
questions), at most `wait_ms` after the first. Expected: the callers of the last batch (who, waiting
for their answers before asking again, come back together) plus those that queued while it ran; after
an idle spell longer than the wait, nobody. So a full batch goes as soon as it is complete instead of
after a fixed delay (which either split 8 clients' requests, arriving over ~12 ms, into two passes
or idled the model), two groups that drifted apart merge again, and a lone caller never waits.
Measured in A/B runs of the server (8 clients, bfloat16, AVX512-BF16 EPYC, 3 x 20 s each): a fixed
5 ms wait 52-67 requests/s, waiting for the expected 60-79.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from qatune.answering.answerer import Query, SpanAnswerer
from qatune.answering.decoding import Prediction
from qatune.errors import QatuneError


@dataclass
class _Pending:
    query: Query
    future: Future[list[Prediction] | QatuneError]


class MicroBatcher:
    """Answers `Query`s from many threads with one model thread; `close()` stops it.

    The model thread also opens the answerer (`opener`), so it is the only thread that ever runs the
    model: torch's OpenMP threads then serve it alone. A forward pass from a thread other than the one
    that first ran torch was 25-40% slower (bfloat16, 8 windows, AVX512-BF16 EPYC: 94-97 ms against
    73-75 ms when the same thread loaded the model). `opener`'s error is raised by the constructor.
    """

    def __init__(self, opener: Callable[[], SpanAnswerer], max_questions: int = 32, wait_ms: float = 20.0) -> None:
        if max_questions < 1 or not 0 <= wait_ms <= 1000:
            raise ValueError(f"max_questions >= 1 and 0 <= wait_ms <= 1000, got {max_questions}, {wait_ms}")
        self.max_questions, self.wait = max_questions, wait_ms / 1000
        self.queue: queue.Queue[_Pending | None] = queue.Queue()
        self.batches = 0  # forward passes made, for tests and logs
        self.expected = 1  # requests to wait for: the last batch's and those that queued while it ran
        self.held: _Pending | None = None  # taken from the queue but did not fit: first of the next batch
        opened: Future[SpanAnswerer] = Future()
        self.thread = threading.Thread(target=self._loop, args=(opener, opened), name="qatune-batcher", daemon=True)
        self.thread.start()
        self.answerer = opened.result()

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
        """`first` plus what is queued and fits, waiting (up to `wait`) while there are fewer requests
        than expected; and whether the batcher was closed."""
        batch, questions = [first], len(first.query.pairs)
        deadline = time.monotonic() + self.wait
        while questions < self.max_questions:
            timeout = 0.0 if len(batch) >= self.expected else max(0.0, deadline - time.monotonic())
            try:
                item = self.queue.get(timeout=timeout)
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

    def _loop(self, opener: Callable[[], SpanAnswerer], opened: Future[SpanAnswerer]) -> None:
        try:
            answerer = opener()
        except BaseException as exc:  # noqa: BLE001  # the constructor raises it
            opened.set_exception(exc)
            return
        opened.set_result(answerer)
        closed = False
        while not closed:
            idle = time.monotonic()
            first, self.held = self.held or self.queue.get(), None
            if first is None:
                return
            if time.monotonic() - idle > self.wait:
                self.expected = 1  # nobody came back within the wait: the last batch's callers are gone
            batch, closed = self._collect(first)
            try:
                results = answerer.predict_queries([p.query for p in batch])
            except BaseException as exc:  # noqa: BLE001  # the callers raise it, not this thread
                for pending in batch:
                    pending.future.set_exception(exc)
                continue
            self.batches += 1
            self.expected = len(batch) + self.queue.qsize() + (self.held is not None)  # before they are answered
            for pending, result in zip(batch, results):
                pending.future.set_result(result)

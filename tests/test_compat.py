"""The private third-party attributes `qatune.compat` relies on still exist in the installed versions.

Each check fails with the library, its version and the attribute, so an upgrade that drops one says
what to fix in qatune/compat.py instead of failing somewhere in a sweep or a server.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from importlib.metadata import version

import pytest

from qatune import compat


def _missing(library: str, attribute: str, what: str) -> str:
    return (
        f"{library} {version(library)}: {attribute} is gone or changed ({what}); "
        f"qatune.compat needs a new way to do this"
    )


def test_importing_compat_imports_none_of_the_libraries():
    code = "import sys, qatune.compat; print(sorted({'accelerate', 'optuna', 'starlette', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_accelerate_shared_state_and_reset():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    shared = getattr(AcceleratorState, "_shared_state", None)
    assert hasattr(shared, "get") and hasattr(shared, "clear"), _missing(
        "accelerate", "AcceleratorState._shared_state", "a dict of the process-wide state"
    )
    reset = getattr(AcceleratorState, "_reset_state", None)
    assert callable(reset) and "reset_partial_state" in inspect.signature(reset).parameters, _missing(
        "accelerate", "AcceleratorState._reset_state(reset_partial_state=...)", "a static method"
    )
    compat.reset_accelerate_precision()
    assert compat.accelerate_precision() is None, _missing(
        "accelerate", "AcceleratorState._reset_state", "it did not empty the shared state"
    )
    Accelerator(mixed_precision="no", cpu=True)
    assert compat.accelerate_precision() == "no", _missing(
        "accelerate", "AcceleratorState._shared_state['_mixed_precision']", "it does not hold the precision"
    )
    compat.reset_accelerate_precision()
    assert compat.accelerate_precision() is None
    Accelerator(mixed_precision="bf16", cpu=True)  # a new precision is accepted after the reset
    assert compat.accelerate_precision() == "bf16"
    compat.reset_accelerate_precision()


def test_optuna_study_storage_and_trial_id(tmp_path):
    import optuna
    from optuna.storages import BaseStorage, RDBStorage

    study = optuna.create_study()  # in memory
    assert isinstance(getattr(study, "_storage", None), BaseStorage), _missing(
        "optuna", "Study._storage", "the study's storage"
    )
    trial = study.ask()
    assert isinstance(getattr(trial, "_trial_id", None), int), _missing(
        "optuna", "Trial._trial_id", "the storage's id of a trial"
    )
    storage = compat.study_storage(study)
    assert storage.get_trial(compat.trial_id(trial)).number == trial.number, _missing(
        "optuna", "Trial._trial_id", "the storage finds another trial under it"
    )

    # What the sweep worker does with them: record a trial's heartbeat in an RDB storage.
    rdb = RDBStorage(f"sqlite:///{tmp_path / 'sweep.db'}", heartbeat_interval=60)
    study = optuna.create_study(storage=rdb, study_name="compat")
    trial = study.ask()
    storage = compat.study_storage(study)
    assert hasattr(storage, "record_heartbeat") and hasattr(storage, "get_heartbeat_interval"), _missing(
        "optuna", "Study._storage", "an RDB study's storage no longer records heartbeats"
    )
    assert storage.get_heartbeat_interval() == 60
    storage.record_heartbeat(compat.trial_id(trial))
    assert study.trials[0].state.name == "RUNNING"


def _request(chunks: list[bytes]):
    from starlette.requests import Request

    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        if not messages:
            raise AssertionError("the request read the stream again instead of its cached body")
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    return Request(scope, receive)


def test_starlette_cached_request_body():
    async def cached() -> bytes | str:
        request = _request([b'{"question": ', b'"why"}'])
        body = b"".join([chunk async for chunk in request.stream()])
        compat.cache_request_body(request, body)
        try:
            return await request.body()
        except RuntimeError as exc:  # "Stream consumed": the cached body was not seen
            return str(exc)

    assert asyncio.run(cached()) == b'{"question": "why"}', _missing(
        "starlette", "Request._body", "Request.body() no longer returns the cached body"
    )

    async def read() -> bytes | None:
        request = _request([b"abc"])
        await request.body()
        return getattr(request, "_body", None)

    assert asyncio.run(read()) == b"abc", _missing("starlette", "Request._body", "body() caches the body elsewhere")


def test_starlette_middleware_hands_the_cached_body_downstream():
    """The serving app's body limit: a middleware streams and counts the body, the handler still reads it."""
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def echo(request: Request) -> Response:
        return Response(await request.body())

    async def count(request: Request, call_next):
        body = b"".join([chunk async for chunk in request.stream()])
        compat.cache_request_body(request, body)
        return await call_next(request)

    app = Starlette(
        routes=[Route("/", echo, methods=["POST"])], middleware=[Middleware(BaseHTTPMiddleware, dispatch=count)]
    )

    def chunks():
        yield b"streamed "
        yield b"body"

    with TestClient(app) as client:
        got = client.post("/", content=chunks()).content
    assert got == b"streamed body", _missing(
        "starlette", "Request._body", "BaseHTTPMiddleware no longer replays it to the app"
    )

"""The private attributes of Accelerate, Optuna and Starlette that qatune needs, in one place.

None of these libraries offers a public way to do what these functions do, so each reaches into
one private attribute. A new release may rename or drop it: `tests/test_compat.py` checks every one
against the installed versions and names the library and attribute that went missing. Each function
says the version it was checked against and what breaks without it.

Importing this module imports none of those libraries (they are imported inside the functions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna import Study
    from optuna.storages import BaseStorage
    from optuna.trial import Trial
    from starlette.requests import Request


def accelerate_precision() -> str | None:
    """The mixed precision Accelerate's process-wide state holds, or None when it holds none yet.

    Reads `AcceleratorState._shared_state` (checked against accelerate 1.15). Without it a second run
    in one process with another precision (the Python API, tests) cannot tell that it must reset the
    state first, and `Accelerator()` raises "AcceleratorState has already been initialized".
    """
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if not state or "_mixed_precision" not in state:
        return None
    return str(state["_mixed_precision"])


def reset_accelerate_precision() -> None:
    """Forget Accelerate's process-wide precision, keeping the process group (DDP) it set up.

    Calls `AcceleratorState._reset_state(reset_partial_state=False)` (checked against accelerate 1.15).
    Without it a process can only ever train in the precision of its first run.
    """
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


def study_storage(study: Study) -> BaseStorage:
    """The storage an Optuna study writes to (for an RDB URL, Optuna's cache around the RDBStorage).

    Reads `Study._storage` (checked against optuna 5.0). Without it the sweep worker cannot record the
    heartbeats of a trial it runs in a child process, so other workers would fail it as stale.
    """
    return study._storage


def trial_id(trial: Trial) -> int:
    """The storage's id of a trial (not its number): what the storage's heartbeat calls take.

    Reads `Trial._trial_id` (checked against optuna 5.0). Without it the sweep worker cannot record
    the trial's heartbeats (see `study_storage`).
    """
    return trial._trial_id


def cache_request_body(request: Request, body: bytes) -> None:
    """Hand a body already read from the stream on to the handlers after a middleware.

    Sets `Request._body` (checked against starlette 1.10): `Request.body()` returns it, and
    `BaseHTTPMiddleware` replays it to the app downstream. Without it a body the serving app's size
    limit streamed and counted is gone, and the handler sees an empty request.
    """
    request._body = body

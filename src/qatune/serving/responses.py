"""Response bodies of the HTTP API, the JSON response class, and the handlers that turn errors into them.

The pydantic models carry no docstrings on purpose: a docstring would become a description in the
OpenAPI schema, which is part of the API.
"""

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from qatune.errors import ModelError, QatuneError, Unavailable
from qatune.io import JsonObject


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate in a request (`"\\ud800"`) can be echoed back
    instead of failing to encode as UTF-8 (which would be a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class AnswerOut(BaseModel):
    text: str
    probability: float = Field(ge=0, le=1, description="calibrated: how often an answer this sure is right")
    start: int = Field(ge=0, description="character offset of the answer in the context")
    end: int = Field(ge=0)
    score: float = Field(description="the raw span score (start + end logit)")
    raw_probability: float = Field(ge=0, le=1, description="the uncalibrated softmax over all candidate spans")


NO_ANSWER = (
    "probability that the context holds no answer: the null answer's for models trained with "
    "unanswerable questions, a cue from the CLS score for SQuAD v1 models"
)


class ModelAnswers(BaseModel):
    model: str
    answers: list[AnswerOut]
    no_answer_probability: float = Field(ge=0, le=1, description=NO_ANSWER)


class AnswerResponse(ModelAnswers):
    took_ms: float
    compare: ModelAnswers | None = None


class BatchResponse(BaseModel):
    results: list[AnswerResponse]
    took_ms: float


class ModelInfo(BaseModel):
    name: str
    role: str
    backend: str


class IndexInfo(BaseModel):
    index: str
    files: int
    passages: int


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    documents: IndexInfo | None = None


class ErrorResponse(BaseModel):
    detail: str


def error_responses() -> dict[int | str, JsonObject]:
    """The error statuses of the answering routes, for their OpenAPI `responses`."""
    return {
        401: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    }


async def qatune_error(request: Request, exc: QatuneError) -> JSONResponse:
    """A QatuneError as JSON: 503 when the server is at fault (its model, or a database it reads), else
    422 for the request."""
    status = 503 if isinstance(exc, ModelError | Unavailable) else 422  # the server, not the request
    return SafeJSONResponse({"detail": str(exc)}, status_code=status)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and what, but not the offending input: echoing NaN or a lone surrogate back
    is what turned validation errors into 500s."""
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "invalid")}
        for e in exc.errors()
    ]
    return SafeJSONResponse({"detail": detail}, status_code=422)


def add_error_handlers(app: FastAPI) -> None:
    """Answer qatune's errors and invalid requests with JSON bodies that never echo the input."""
    app.exception_handler(QatuneError)(qatune_error)
    app.exception_handler(RequestValidationError)(invalid_request)

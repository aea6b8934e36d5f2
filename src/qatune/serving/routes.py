"""The routes of the HTTP API, one group per function: qatune's answers, the Hugging Face format, the
model list and health check, and the web page.

Endpoint names and docstrings are part of the OpenAPI schema (operation ids, summaries, descriptions),
so they stay as they are; the request bodies are built from the server's limits.
"""

import functools
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from qatune.serving.config import ServeConfig
from qatune.serving.hf import HFAnswer, answer_hf
from qatune.serving.hf import request_model as hf_request_model
from qatune.serving.models import Models
from qatune.serving.responses import (
    AnswerResponse,
    BatchResponse,
    ErrorResponse,
    IndexInfo,
    ModelInfo,
    ModelsResponse,
    error_responses,
)
from qatune.serving.schemas import request_models, text_types

Auth = Callable[..., None]
HF_DOC = "The Hugging Face inference format: `InferenceClient(model=URL).question_answering(...)` works."


def require_ready(models: Models) -> None:
    """503 while the models are still loading."""
    if not models.ready:
        raise HTTPException(503, "the model is still loading")


def _check_request_chars(items: list[Any], limit: int) -> None:
    """422 for a request whose contexts, questions and titles hold more than `limit` characters in all."""
    chars = sum(len(item.context) + len(item.question) + len(getattr(item, "title", "")) for item in items)
    if chars > limit:
        raise HTTPException(
            422,
            f"the request holds {chars} characters of contexts and questions; the limit "
            f"per request is {limit} (--max-request-chars): split it",
        )


def _answer(models: Models, config: ServeConfig, items: list[Any], top_k: int) -> list[AnswerResponse]:
    """Each item's answers from the primary model (and the comparison model's, if any), in one pass each."""
    require_ready(models)
    _check_request_chars(items, config.max_request_chars)
    pairs = [(item.context, item.question) for item in items]
    titles = [item.title for item in items]
    began = time.perf_counter()
    primary = models.ask("primary", pairs, top_k, titles)
    other = models.ask("compare", pairs, top_k, titles) if "compare" in models.loaded else None
    took = round((time.perf_counter() - began) * 1000, 2)
    return [
        AnswerResponse(**mine.model_dump(), took_ms=took, compare=other[i] if other else None)
        for i, mine in enumerate(primary)
    ]


def add_answer_routes(app: FastAPI, config: ServeConfig, models: Models, auth: Auth) -> None:
    """POST /v1/answer (one question) and POST /v1/answer:batch (up to --max-batch)."""
    AnswerRequest, BatchRequest = request_models(config)
    errors = error_responses()

    @app.post("/v1/answer", response_model=AnswerResponse, responses=errors, dependencies=[Depends(auth)])
    def answer_one(request: AnswerRequest) -> AnswerResponse:  # type: ignore[valid-type]  # built from config
        """Top-k answers to one question about one context (and the comparison model's, if any)."""
        return _answer(models, config, [request], request.top_k)[0]  # type: ignore[attr-defined]

    @app.post("/v1/answer:batch", response_model=BatchResponse, responses=errors, dependencies=[Depends(auth)])
    def answer_batch(request: BatchRequest) -> BatchResponse:  # type: ignore[valid-type]  # built from config
        """Many questions at once (up to --max-batch), answered in one batched pass."""
        began = time.perf_counter()
        results = _answer(models, config, request.items, request.top_k)  # type: ignore[attr-defined]
        return BatchResponse(results=results, took_ms=round((time.perf_counter() - began) * 1000, 2))


def add_hf_routes(app: FastAPI, config: ServeConfig, models: Models, auth: Auth) -> None:
    """POST / and POST /v1/hf: one question in the Hugging Face inference format."""
    HFRequest = hf_request_model(*text_types(config.max_context_chars, config.max_question_chars))
    errors = error_responses()

    def hf(request: HFRequest) -> HFAnswer | list[HFAnswer]:  # type: ignore[valid-type]  # built from config
        """One question in the Hugging Face inference format (`parameters` as HF's: see the schema)."""
        require_ready(models)
        ask = functools.partial(models.predict, "primary")
        return answer_hf(request, ask, models.loaded["primary"].answerer.decoding)

    for path in ("/", "/v1/hf"):
        app.post(
            path,
            response_model=HFAnswer | list[HFAnswer],
            responses=errors,
            dependencies=[Depends(auth)],
            summary=f"Answer (Hugging Face format) at {path}",
            description=HF_DOC,
        )(hf)


def add_info_routes(app: FastAPI, models: Models, auth: Auth) -> None:
    """GET /v1/models (behind the API key) and GET /healthz (open, for load balancers)."""

    @app.get("/v1/models", response_model=ModelsResponse, dependencies=[Depends(auth)])
    def list_models() -> ModelsResponse:
        held = models.index.info() if models.index else None
        documents = IndexInfo(index=held.location, files=held.files, passages=held.passages) if held else None
        return ModelsResponse(
            models=[
                ModelInfo(name=loaded.name, role=role, backend=loaded.backend) for role, loaded in models.loaded.items()
            ],
            documents=documents,
        )

    @app.get("/healthz", responses={503: {"model": ErrorResponse}})
    def health() -> dict[str, str]:
        if not models.ready:
            raise HTTPException(503, "loading")
        return {"status": "ok"}


def add_page(app: FastAPI) -> None:
    """GET /: the web page (not in the OpenAPI schema)."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (resources.files("qatune") / "resources" / "web" / "index.html").read_text(encoding="utf-8")

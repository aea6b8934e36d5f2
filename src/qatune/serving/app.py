"""HTTP API and web page for a QA model: `qatune serve --model DIR [--compare-with M]`.

FastAPI app: POST /v1/answer, POST /v1/answer:batch, GET /v1/models, GET /healthz, the page at /,
and the Hugging Face inference format at POST / and /v1/hf (`serve_hf`). Requests are checked
against configurable limits (in the OpenAPI schema; over one: 422 naming the field and the limit, or
413 for an oversized body; the characters of one request are bounded too), an optional API key is
compared in constant time, and one thread per model answers concurrent requests in micro-batches
(`batching`), so requests never race on a model and do not wait for each other one by one.
"""

import functools
import hmac
import json
import math
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from qatune.answering.answerer import Query
from qatune.answering.decoding import Decoding, Prediction
from qatune.errors import ConfigError, ModelError, QatuneError
from qatune.serving.hf import HFAnswer, answer_hf
from qatune.serving.hf import request_model as hf_request_model
from qatune.serving.schemas import json_int, text_types
from qatune.training.config import SEED_MAX


@dataclass
class ServeConfig:
    """What `qatune serve` runs with; every limit is configurable from the command line."""

    model: str = "default"
    compare_with: str | None = None
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_context_chars: int = 20_000
    max_question_chars: int = 1_000
    max_batch: int = 32
    max_body_bytes: int = 1_000_000
    # The work of one request: about 8,000 characters a second for the default model on 2 CPU cores, so
    # 100,000 keeps any request near 12 s (a batch of 32 contexts of 20,000 characters took 77 s).
    max_request_chars: int = 100_000
    # Micro-batching: one forward pass takes up to this many questions of concurrent requests, waiting
    # at most batch_wait_ms for as many requests as it expects (`batching`); 1 answers requests one at
    # a time (the old behaviour).
    batch_questions: int = 32
    batch_wait_ms: float = 20.0
    dtype: str = "auto"  # torch weights: auto = bfloat16 where the CPU has AMX/AVX512-BF16 (or on a GPU)
    seed: int = 0

    def check(self) -> "ServeConfig":
        """Raise ConfigError for an empty API key (it must never mean "no auth") or a limit below 1."""
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError(
                "the API key is empty (--api-key or $QATUNE_API_KEY); give a real key, or neither "
                "to serve without authentication"
            )
        limits = ("max_context_chars", "max_question_chars", "max_batch", "max_body_bytes", "max_request_chars")
        for name in (*limits, "batch_questions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        wait = self.batch_wait_ms
        if (
            isinstance(wait, bool)
            or not isinstance(wait, (int, float))
            or not (math.isfinite(wait) and 0 <= wait <= 1000)
        ):
            raise ConfigError(f"--batch-wait-ms must be between 0 and 1000, got {wait!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"--seed must be between 0 and {SEED_MAX}, got {self.seed!r}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"--dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        return self


def request_models(config: ServeConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """Request bodies whose schema carries this server's limits, so clients (and fuzzers) can see them."""
    context, question = text_types(config.max_context_chars, config.max_question_chars)
    top_k = json_int(1, 10, "how many answers, best first")
    forbid = ConfigDict(extra="forbid")  # a misspelt field ("topk") is a 422 naming it, not silently ignored
    single = create_model(
        "AnswerRequest", __config__=forbid, context=(context, ...), question=(question, ...), top_k=(top_k, 3)
    )
    item: Any = create_model("BatchItem", __config__=forbid, context=(context, ...), question=(question, ...))
    items: Any = Annotated[
        list[item], Field(min_length=1, max_length=config.max_batch, description="questions (--max-batch)")
    ]
    return single, create_model("BatchRequest", __config__=forbid, top_k=(top_k, 3), items=(items, ...))


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


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ErrorResponse(BaseModel):
    detail: str


@dataclass
class Loaded:
    answerer: Any
    backend: str
    name: str
    batcher: Any  # batching.MicroBatcher: the one thread that calls this model


def _open(model: str, config: ServeConfig) -> Loaded:
    """The answerer of `model` (ONNX folder or torch), with the server's limits as its size guard,
    opened by the micro-batcher's thread: the one thread that runs it."""
    from qatune.answering.answerer import SpanAnswerer
    from qatune.answering.batching import MicroBatcher
    from qatune.answering.factory import open_answerer
    from qatune.hardware import inference_dtype

    chars = max(config.max_context_chars, config.max_question_chars)
    backend: list[str] = []

    def opener() -> SpanAnswerer:
        answerer, name = open_answerer(
            model, seed=config.seed, max_context_chars=chars, dtype=inference_dtype(config.dtype)
        )
        backend.append(name)
        return answerer

    batcher = MicroBatcher(opener, config.batch_questions, config.batch_wait_ms)
    return Loaded(batcher.answerer, backend[0], model, batcher)


PROBE = ("Earth is the third planet from the Sun.", "Which planet is Earth?")


class Models:
    """The loaded answerers (primary and optional comparison), each behind its micro-batcher."""

    def __init__(self) -> None:
        self.loaded: dict[str, Loaded] = {}
        self.ready = False

    def load(self, config: ServeConfig) -> None:
        """Open the models and answer one question with each: a model that cannot answer (damaged weights
        giving NaN) is an error here, before the server takes requests (and the first request is warm)."""
        self.loaded["primary"] = _open(config.model, config)
        if config.compare_with:
            self.loaded["compare"] = _open(config.compare_with, config)
        for role in self.loaded:
            self.predict(role, [PROBE], 1)
        self.ready = True

    def predict(
        self, role: str, pairs: list[tuple[str, str]], top_k: int, decoding: Decoding | None = None
    ) -> list[Prediction]:
        return self.loaded[role].batcher.ask(Query(pairs, top_k, decoding))

    def ask(self, role: str, pairs: list[tuple[str, str]], top_k: int) -> list[ModelAnswers]:
        found = self.predict(role, pairs, top_k)
        return [ModelAnswers(model=self.loaded[role].name, **p.to_dict()) for p in found]

    def close(self) -> None:
        for loaded in self.loaded.values():
            loaded.batcher.close()
        self.loaded.clear()
        self.ready = False


def create_app(config: ServeConfig, models: Models | None = None) -> FastAPI:
    """The FastAPI app; `models` may be pre-loaded (tests), else they load at startup."""
    config.check()
    models = models or Models()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = not models.ready  # loaded here: closed here (pre-loaded models belong to the caller)
        if owned:
            models.load(config)
        yield
        if owned:
            models.close()

    app = FastAPI(
        title="qatune",
        version=_version(),
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        description="Extractive question answering: top-k answers with probabilities and spans.",
    )
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    app.middleware("http")(_body_limit(config.max_body_bytes))
    auth = _api_key_check(config.api_key)
    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    }

    AnswerRequest, BatchRequest = request_models(config)
    HFRequest = hf_request_model(*text_types(config.max_context_chars, config.max_question_chars))

    def answer(items: list, top_k: int) -> list[AnswerResponse]:
        if not models.ready:
            raise HTTPException(503, "the model is still loading")
        chars = sum(len(item.context) + len(item.question) for item in items)
        if chars > config.max_request_chars:
            raise HTTPException(
                422,
                f"the request holds {chars} characters of contexts and questions; the limit "
                f"per request is {config.max_request_chars} (--max-request-chars): split it",
            )
        pairs = [(item.context, item.question) for item in items]
        began = time.perf_counter()
        primary = models.ask("primary", pairs, top_k)
        other = models.ask("compare", pairs, top_k) if "compare" in models.loaded else None
        took = round((time.perf_counter() - began) * 1000, 2)
        return [
            AnswerResponse(**mine.model_dump(), took_ms=took, compare=other[i] if other else None)
            for i, mine in enumerate(primary)
        ]

    @app.post("/v1/answer", response_model=AnswerResponse, responses=errors, dependencies=[Depends(auth)])
    def answer_one(request: AnswerRequest) -> AnswerResponse:  # type: ignore[valid-type]  # built from config
        """Top-k answers to one question about one context (and the comparison model's, if any)."""
        return answer([request], request.top_k)[0]  # type: ignore[attr-defined]

    @app.post("/v1/answer:batch", response_model=BatchResponse, responses=errors, dependencies=[Depends(auth)])
    def answer_batch(request: BatchRequest) -> BatchResponse:  # type: ignore[valid-type]  # built from config
        """Many questions at once (up to --max-batch), answered in one batched pass."""
        began = time.perf_counter()
        results = answer(request.items, request.top_k)  # type: ignore[attr-defined]
        return BatchResponse(results=results, took_ms=round((time.perf_counter() - began) * 1000, 2))

    def hf(request: HFRequest) -> HFAnswer | list[HFAnswer]:  # type: ignore[valid-type]  # built from config
        """One question in the Hugging Face inference format (`parameters` as HF's: see the schema)."""
        if not models.ready:
            raise HTTPException(503, "the model is still loading")
        ask = functools.partial(models.predict, "primary")
        return answer_hf(request, ask, models.loaded["primary"].answerer.decoding)

    hf_doc = "The Hugging Face inference format: `InferenceClient(model=URL).question_answering(...)` works."
    for path in ("/", "/v1/hf"):
        app.post(
            path,
            response_model=HFAnswer | list[HFAnswer],
            responses=errors,
            dependencies=[Depends(auth)],
            summary=f"Answer (Hugging Face format) at {path}",
            description=hf_doc,
        )(hf)

    @app.get("/v1/models", response_model=ModelsResponse, dependencies=[Depends(auth)])
    def list_models() -> ModelsResponse:
        return ModelsResponse(
            models=[
                ModelInfo(name=loaded.name, role=role, backend=loaded.backend) for role, loaded in models.loaded.items()
            ]
        )

    @app.get("/healthz", responses={503: {"model": ErrorResponse}})
    def health() -> dict[str, str]:
        if not models.ready:
            raise HTTPException(503, "loading")
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (resources.files("qatune") / "resources" / "web" / "index.html").read_text(encoding="utf-8")

    @app.exception_handler(QatuneError)
    async def qatune_error(request: Request, exc: QatuneError) -> JSONResponse:
        status = 503 if isinstance(exc, ModelError) else 422  # the model, not the request, is at fault
        return SafeJSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with where and what, but not the offending input: echoing NaN or a lone surrogate back
        is what turned validation errors into 500s."""
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "invalid")}
            for e in exc.errors()
        ]
        return SafeJSONResponse({"detail": detail}, status_code=422)

    return app


def _api_key_check(key: str | None):
    """Accept exactly the documented forms: `X-API-Key: KEY` or `Authorization: Bearer KEY`."""

    def check(
        authorization: str | None = Header(None, include_in_schema=False),
        x_api_key: str | None = Header(None, include_in_schema=False),
    ) -> None:
        if key is None:
            return
        scheme, _, token = (authorization or "").strip().partition(" ")
        given = x_api_key if x_api_key is not None else token.strip() if scheme.lower() == "bearer" else ""
        if not given or not hmac.compare_digest(given.encode(), key.encode()):
            raise HTTPException(401, "missing or wrong API key (send X-API-Key: KEY or Authorization: Bearer KEY)")

    return check


def _body_limit(limit: int):
    """Refuse bodies over `limit` bytes with 413, whether announced (Content-Length) or streamed."""

    async def middleware(request: Request, call_next):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return JSONResponse(
                {"detail": f"request body of {declared} bytes; the limit is {limit} (--max-body-bytes)"},
                status_code=413,
            )
        if request.method == "POST" and not declared:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return JSONResponse(
                        {"detail": f"request body over the limit of {limit} bytes (--max-body-bytes)"}, status_code=413
                    )
            request._body = body  # Starlette reads the cached body downstream
        return await call_next(request)

    return middleware


def _version() -> str:
    from qatune import __version__

    return __version__

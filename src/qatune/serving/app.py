"""HTTP API and web page for a QA model: `qatune serve --model DIR [--compare-with M]`.

FastAPI app: POST /v1/answer, POST /v1/answer:batch, GET /v1/models, GET /healthz, the page at /,
and the Hugging Face inference format at POST / and /v1/hf (`serving.hf`). Requests are checked
against configurable limits (in the OpenAPI schema; over one: 422 naming the field and the limit, or
413 for an oversized body; the characters of one request are bounded too), an optional API key is
compared in constant time, and one thread per model answers concurrent requests in micro-batches
(`answering.batching`), so requests never race on a model and do not wait for each other one by one.

This module assembles the app; the parts are `config` (ServeConfig), `models` (the loaded models),
`schemas` and `responses` (the bodies), `middleware` (CORS, body limit, API key) and `routes`.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from qatune.serving.config import ServeConfig
from qatune.serving.documents import add_document_routes
from qatune.serving.middleware import add_middleware, api_key_check
from qatune.serving.models import Models
from qatune.serving.responses import SafeJSONResponse, add_error_handlers
from qatune.serving.routes import add_answer_routes, add_hf_routes, add_info_routes, add_page

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(config: ServeConfig, models: Models | None = None) -> FastAPI:
    """The FastAPI app; `models` may be pre-loaded (tests), else they load at startup."""
    config.check()
    models = models or Models()
    app = FastAPI(
        title="qatune",
        version=_version(),
        lifespan=_lifespan(config, models),
        default_response_class=SafeJSONResponse,
        description="Extractive question answering: top-k answers with probabilities and spans.",
    )
    add_middleware(app, config)
    auth = api_key_check(config.api_key)
    add_answer_routes(app, config, models, auth)
    add_hf_routes(app, config, models, auth)
    add_document_routes(app, config, models, auth)
    add_info_routes(app, models, auth)
    add_page(app)
    add_error_handlers(app)
    return app


def _lifespan(config: ServeConfig, models: Models) -> Lifespan:
    """Load the models at startup and close them at shutdown, unless the caller loaded them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = not models.ready  # loaded here: closed here (pre-loaded models belong to the caller)
        if owned:
            models.load(config)
        yield
        if owned:
            models.close()

    return lifespan


def _version() -> str:
    """qatune's version, for the OpenAPI schema."""
    from qatune import __version__

    return __version__

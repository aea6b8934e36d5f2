"""What every request passes before a route: CORS (if configured), the body size limit, the API key."""

import hmac
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from qatune.compat import cache_request_body
from qatune.serving.config import ANY_ORIGIN_WARNING, ServeConfig

logger = logging.getLogger(__name__)

CallNext = Callable[[Request], Awaitable[Response]]
Middleware = Callable[[Request, CallNext], Awaitable[Response]]


def add_middleware(app: FastAPI, config: ServeConfig) -> None:
    """CORS for the configured origins (none: no CORS headers at all), then the body limit outside it."""
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        if "*" in config.cors_origins:
            logger.warning(ANY_ORIGIN_WARNING)
        app.add_middleware(
            CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    app.middleware("http")(body_limit(config.max_body_bytes))


def api_key_check(key: str | None) -> Callable[[str | None, str | None], None]:
    """Accept exactly the documented forms: `X-API-Key: KEY` or `Authorization: Bearer KEY`.

    Compared as bytes in constant time: the key is printable ASCII (`ServeConfig.check`), and a header is
    turned back into the bytes the client sent (Starlette reads them as Latin-1), so no header value can
    raise: one that is not the key, in any encoding, is a 401."""
    expected = key.encode("ascii") if key is not None else None

    def check(
        authorization: str | None = Header(None, include_in_schema=False),
        x_api_key: str | None = Header(None, include_in_schema=False),
    ) -> None:
        if expected is None:
            return
        scheme, _, token = (authorization or "").strip().partition(" ")
        given = x_api_key if x_api_key is not None else token.strip() if scheme.lower() == "bearer" else ""
        if not given or not hmac.compare_digest(given.encode("latin-1", errors="replace"), expected):
            raise HTTPException(401, "missing or wrong API key (send X-API-Key: KEY or Authorization: Bearer KEY)")

    return check


def body_limit(limit: int) -> Middleware:
    """Refuse bodies over `limit` bytes with 413, whether announced (Content-Length) or streamed."""

    async def middleware(request: Request, call_next: CallNext) -> Response:
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
            cache_request_body(request, body)  # Starlette reads the cached body downstream
        return await call_next(request)

    return middleware

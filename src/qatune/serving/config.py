"""What `qatune serve` runs with (`ServeConfig`): the models, the API key and every request limit."""

import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from qatune.errors import ConfigError
from qatune.training.config import SEED_MAX

LIMITS = (
    "max_context_chars",
    "max_question_chars",
    "max_batch",
    "max_body_bytes",
    "max_request_chars",
    "max_request_windows",
)


@dataclass
class ServeConfig:
    """What `qatune serve` runs with; every limit is configurable from the command line."""

    model: str = "default"
    compare_with: str | None = None
    index: str | None = None  # a document index (`qatune index`): POST /v1/ask answers from it
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_context_chars: int = 20_000
    max_question_chars: int = 1_000
    max_batch: int = 32
    max_body_bytes: int = 1_000_000
    # The work of one request is its model windows, counted after tokenising: characters alone do not
    # bound it (20,000 characters make 28 windows of English, 74 of digits, 131 of Chinese;
    # bench/results/window_cost.json: 34-41 ms a window on 2 cores, float32), so 256 windows is about
    # 10 s. The characters bound the tokenising, which is cheap beside the model.
    max_request_chars: int = 100_000
    max_request_windows: int = 256
    # Micro-batching: one forward pass takes up to this many questions of concurrent requests, waiting
    # at most batch_wait_ms for as many requests as it expects (`answering.batching`); 1 answers requests one at
    # a time (the old behaviour).
    batch_questions: int = 32
    batch_wait_ms: float = 20.0
    dtype: str = "auto"  # torch weights: auto = bfloat16 where the CPU has AMX/AVX512-BF16 (or on a GPU)
    seed: int = 0

    def check(self) -> "ServeConfig":
        """Raise ConfigError for an API key that is empty (it must never mean "no auth") or not printable
        ASCII, an origin that is not one, or a limit below 1."""
        if self.api_key is not None:
            check_api_key(self.api_key)
        for origin in self.cors_origins:
            check_origin(origin)
        self._check_limits()
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"--seed must be between 0 and {SEED_MAX}, got {self.seed!r}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"--dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        return self

    def _check_limits(self) -> None:
        """Raise ConfigError for a size limit that is not a positive integer, or a batch wait out of range."""
        for name in (*LIMITS, "batch_questions"):
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


KEY_SOURCE = "the API key (--api-key or $QATUNE_API_KEY)"


def check_api_key(key: str) -> None:
    """Refuse a key every client cannot send byte for byte: empty, not printable ASCII (a header's bytes
    are read as Latin-1, so `sécret` from a UTF-8 client never matches, and an undecodable byte such as
    `\\xff` could not be compared), or with spaces at its ends (HTTP drops them). The key is not echoed."""
    if not key.strip():
        raise ConfigError(
            "the API key is empty (--api-key or $QATUNE_API_KEY); give a real key, or neither to serve "
            "without authentication"
        )
    bad = next((i for i, c in enumerate(key, 1) if not " " <= c <= "~"), None)
    if bad is not None:
        raise ConfigError(
            f"{KEY_SOURCE}: character {bad} is not printable ASCII; use letters, digits and punctuation, "
            f"e.g. a key from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    if key != key.strip():
        raise ConfigError(f"{KEY_SOURCE} starts or ends with a space, which HTTP drops; remove it")


_HOST = r"\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
ORIGIN = re.compile(rf"[a-z][a-z0-9+.-]*://(?:{_HOST})(?::[1-9][0-9]{{0,4}})?")
DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_ORIGIN_WARNING = (
    "--cors-origin '*': any web page may call this server from its visitors' browsers (no cookies are sent; "
    "with --api-key, only pages that hold the key get answers); list the origins instead where you can"
)


def check_origin(origin: str) -> None:
    """Refuse a --cors-origin that is not `*` or an origin as a browser sends it: scheme://host[:port] in
    lower case, without a path, a trailing /, or the scheme's default port (Starlette compares exactly, so
    anything else would never match)."""
    if origin == "*" or (ORIGIN.fullmatch(origin) and int(_port(origin) or 1) <= 65535 and not _default_port(origin)):
        return
    hint = _suggest(origin)
    raise ConfigError(
        f"--cors-origin {origin!r}: not an origin; give scheme://host[:port] as a browser sends it, e.g. "
        f"https://example.com or http://localhost:3000 (no path, no trailing /), or * for any"
        + (f"; did you mean {hint}?" if hint else "")
    )


def _port(origin: str) -> str | None:
    host_port = origin.split("://", 1)[1]
    return host_port.rsplit(":", 1)[1] if re.search(r":[0-9]+$", host_port) else None


def _default_port(origin: str) -> bool:
    port = _port(origin)
    return port is not None and DEFAULT_PORTS.get(origin.split("://", 1)[0]) == int(port)


def _suggest(origin: str) -> str | None:
    """The origin the user probably meant (lower case, no path, no default port), if there is one."""
    try:
        parts = urlsplit(origin.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    scheme = parts.scheme.lower()
    host = f"[{host}]" if ":" in host else host
    keep = port is not None and DEFAULT_PORTS.get(scheme) != port
    guess = f"{scheme}://{host}" + (f":{port}" if keep else "")
    return guess if guess != origin and ORIGIN.fullmatch(guess) else None

"""What `qatune serve` runs with (`ServeConfig`): the models, the API key and every request limit."""

import math
from dataclasses import dataclass, field

from qatune.errors import ConfigError
from qatune.training.config import SEED_MAX

LIMITS = ("max_context_chars", "max_question_chars", "max_batch", "max_body_bytes", "max_request_chars")


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
    # at most batch_wait_ms for as many requests as it expects (`answering.batching`); 1 answers requests one at
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

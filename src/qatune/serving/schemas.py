"""Field types of the HTTP API requests, shared by qatune's own format and the Hugging Face one.

Types are strict: `"3"` or `true` is not a top_k, and a context is a string. "Not blank" is a pattern
both JSON Schema (ECMA) and Python agree on: the characters each counts as whitespace are all excluded.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict, StringConstraints

NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"


def _json_integer(value: Any) -> Any:
    """What JSON Schema calls an integer: a number without a fraction (4 or 4.0), not "4" or true."""
    if isinstance(value, (str, bool)):
        raise ValueError("expected a JSON integer, not a string or boolean")
    return value


def json_int(low: int, high: int, description: str) -> Any:
    """An integer in [low, high] as JSON Schema means it (4.0 is one; "4" and true are not)."""
    return Annotated[int, Field(ge=low, le=high, description=description), BeforeValidator(_json_integer)]


def text_types(max_context_chars: int, max_question_chars: int) -> tuple[Any, Any]:
    """The context and question string types with the server's limits (every endpoint uses these)."""

    def text(limit: int, flag: str, what: str) -> Any:
        return Annotated[
            str,
            Strict(),
            StringConstraints(min_length=1, max_length=limit, pattern=NOT_BLANK),
            Field(description=f"{what}; not blank, at most {limit} characters ({flag})"),
        ]

    context = text(max_context_chars, "--max-context-chars", "the text to find the answer in")
    return context, text(max_question_chars, "--max-question-chars", "the question")

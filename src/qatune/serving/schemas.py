"""Field types of the HTTP API requests, shared by qatune's own format and the Hugging Face one, and
qatune's own request bodies (`request_models`), built with the server's limits.

Types are strict: `"3"` or `true` is not a top_k, and a context is a string. "Not blank" is a pattern
both JSON Schema (ECMA) and Python agree on: the characters each counts as whitespace are all excluded.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints, create_model

from qatune.data.squad import MAX_TITLE_CHARS
from qatune.serving.config import ServeConfig

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


def request_models(config: ServeConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """Request bodies whose schema carries this server's limits, so clients (and fuzzers) can see them."""
    context, question = text_types(config.max_context_chars, config.max_question_chars)
    top_k = json_int(1, 10, "how many answers, best first")
    title: Any = Annotated[
        str,
        Strict(),
        StringConstraints(max_length=MAX_TITLE_CHARS),
        Field(
            description=f"the title of the context's document, at most {MAX_TITLE_CHARS} characters: read in front of "
            "the question by a model trained with titles (`train --use-title`), else ignored"
        ),
    ]
    forbid = ConfigDict(extra="forbid")  # a misspelt field ("topk") is a 422 naming it, not silently ignored
    single = create_model(
        "AnswerRequest",
        __config__=forbid,
        context=(context, ...),
        question=(question, ...),
        title=(title, ""),
        top_k=(top_k, 3),
    )
    item: Any = create_model(
        "BatchItem", __config__=forbid, context=(context, ...), question=(question, ...), title=(title, "")
    )
    items: Any = Annotated[
        list[item], Field(min_length=1, max_length=config.max_batch, description="questions (--max-batch)")
    ]
    return single, create_model("BatchRequest", __config__=forbid, top_k=(top_k, 3), items=(items, ...))

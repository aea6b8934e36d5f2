"""POST /v1/ask: a question answered from the server's document index (`serve --index`), with citations.

The passages are retrieved in the request's thread; reading them goes through the primary model's
micro-batcher as one joint query (`documents.reader`), so it shares forward passes with /v1/answer.
"""

import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field, create_model

from qatune.documents.reader import cite, joint_query, retrieve
from qatune.documents.records import RETRIEVAL_WEIGHT
from qatune.serving.config import ServeConfig
from qatune.serving.models import Models
from qatune.serving.responses import NO_ANSWER, error_responses
from qatune.serving.routes import require_ready
from qatune.serving.schemas import json_int, text_types

MAX_PASSAGES = 50
Weight = Annotated[
    float,
    Field(
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="how much an answer's passage's retrieval score counts beside the reader's (0: the reader alone)",
    ),
]


class CitedOut(BaseModel):
    text: str
    probability: float = Field(ge=0, le=1, description="calibrated, over every span of every passage read")
    raw_probability: float = Field(ge=0, le=1)
    score: float
    file: str = Field(description="the document the answer is in")
    page: int | None = Field(description="its PDF page (1-based), null for other files")
    start: int = Field(ge=0, description="character offset of the answer in the file's extracted text")
    end: int = Field(ge=0)
    passage: str = Field(description="the passage the answer was read in")
    passage_start: int = Field(ge=0, description="character offset of the answer in the passage")
    passage_end: int = Field(ge=0)
    retrieval_rank: int = Field(ge=1, description="the passage's place among those retrieved")


class DocumentResponse(BaseModel):
    question: str
    answers: list[CitedOut]
    no_answer_probability: float = Field(ge=0, le=1, description=NO_ANSWER)
    found: bool = Field(description="false: not found in these documents (the model's no-answer decision)")
    passages: int = Field(description="passages read")
    model: str
    took_ms: float


def ask_request(config: ServeConfig) -> Any:
    """The request body of /v1/ask, with this server's question limit."""
    _, question = text_types(config.max_context_chars, config.max_question_chars)
    return create_model(
        "AskRequest",
        __config__=ConfigDict(extra="forbid"),
        question=(question, ...),
        top_k=(json_int(1, 10, "how many answers, best first"), 3),
        passages=(json_int(1, MAX_PASSAGES, "passages retrieved and read"), 10),
        retrieval_weight=(Weight, RETRIEVAL_WEIGHT),
    )


def add_document_routes(app: FastAPI, config: ServeConfig, models: Models, auth: Any) -> None:
    """POST /v1/ask, when the server has an index."""
    if config.index is None:
        return
    AskRequest = ask_request(config)

    @app.post("/v1/ask", response_model=DocumentResponse, responses=error_responses(), dependencies=[Depends(auth)])
    def ask_documents(request: AskRequest) -> DocumentResponse:  # type: ignore[valid-type]  # built from config
        """Top-k answers to a question from the server's documents, each cited: file, page, passage."""
        require_ready(models)
        began = time.perf_counter()
        index, primary = models.index, models.loaded["primary"]
        assert index is not None
        question = request.question  # type: ignore[attr-defined]
        hits = retrieve(index, [question], request.passages)[0]  # type: ignore[attr-defined]
        query = joint_query(question, hits, request.top_k, request.retrieval_weight)  # type: ignore[attr-defined]
        prediction = primary.batcher.ask(query)[0]
        result = cite(question, hits, prediction, primary.answerer.decoding)
        took = round((time.perf_counter() - began) * 1000, 2)
        return DocumentResponse(**result.to_dict(), model=primary.name, took_ms=took)

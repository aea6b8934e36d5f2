"""The Hugging Face inference format for question answering, so any HF client can call `qatune serve`.

`POST /` and `POST /v1/hf` take `{"inputs": {"question", "context"}, "parameters": {...}}` and give
`{answer, score, start, end}` (a list of them when top_k > 1), as HF Inference Endpoints do; so
`huggingface_hub.InferenceClient(model="http://host:8000").question_answering(...)` works unchanged.
`score` is qatune's calibrated probability.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model

from qatune.answering.decoding import Decoding, Prediction
from qatune.serving.schemas import json_int

# What the HF parameters change here. The window settings (doc_stride, max_seq_len, max_question_len)
# are the model's own, saved with it: a client's value is checked and otherwise has no effect.
PARAMETERS_DOC = (
    "HF question-answering parameters. top_k: how many answers (1 gives one object, more a list). "
    "max_answer_len: longest answer in tokens. align_to_words: answers start and end on word "
    "boundaries (default true). handle_impossible_answer: true lets the empty answer (no answer in the "
    "context) compete for any model, false never gives it, absent follows the model (a model trained "
    "with unanswerable questions abstains at its saved threshold). doc_stride, max_seq_len and "
    "max_question_len are accepted for compatibility; qatune cuts windows with the model's own settings."
)


def _optional(low: int, high: int, description: str) -> Any:
    return json_int(low, high, description) | None


_flag = Annotated[bool, Strict()]
HFParameters: Any = create_model(
    "HFParameters",
    __config__=ConfigDict(extra="forbid"),
    top_k=(_optional(1, 10, "how many answers; 1 (or none) gives one object, more a list"), None),
    max_answer_len=(_optional(1, 512, "longest answer in tokens"), None),
    align_to_words=(_flag | None, None),
    handle_impossible_answer=(_flag | None, None),
    doc_stride=(_optional(0, 4096, "accepted; the model's own stride is used"), None),
    max_seq_len=(_optional(8, 4096, "accepted; the model's own window length is used"), None),
    max_question_len=(_optional(1, 4096, "accepted; the model's own limit is used"), None),
)


class HFAnswer(BaseModel):
    answer: str
    score: float = Field(ge=0, le=1, description="calibrated probability that the answer is right")
    start: int = Field(ge=0)
    end: int = Field(ge=0)


def request_model(context: Any, question: Any) -> type[BaseModel]:
    """The request body, with the server's text limits (`context`, `question`: annotated str types)."""
    forbid = ConfigDict(extra="forbid")
    inputs: Any = create_model("HFInputs", __config__=forbid, question=(question, ...), context=(context, ...))
    parameters = Annotated[HFParameters, Field(description=PARAMETERS_DOC)]
    return create_model("HFRequest", __config__=forbid, inputs=(inputs, ...), parameters=(parameters, HFParameters()))


def hf_decoding(model: Decoding, parameters: Any) -> Decoding:
    """The model's decoding with the request's max_answer_len / align_to_words, where given."""
    if parameters.max_answer_len is not None:
        model = dataclasses.replace(model, max_answer_length=parameters.max_answer_len)
    if parameters.align_to_words is not None:
        model = dataclasses.replace(model, align_to_words=parameters.align_to_words)
    return model


def hf_answers(prediction: Prediction, top_k: int, impossible: bool | None) -> list[HFAnswer]:
    """Up to `top_k` answers in HF form; `impossible` as handle_impossible_answer (see PARAMETERS_DOC)."""
    out = [HFAnswer(answer=a.text, score=min(1.0, a.probability), start=a.start, end=a.end) for a in prediction.answers]
    no_answer = min(1.0, prediction.no_answer_probability)
    if impossible is False:
        out = [a for a in out if a.answer != ""]
    elif impossible and not any(a.answer == "" for a in out) and no_answer > (out[0].score if out else 0.0):
        out.insert(0, HFAnswer(answer="", score=no_answer, start=0, end=0))
    return out[:top_k]


Ask = Callable[[list[tuple[str, str]], int, Decoding], list[Prediction]]


def answer_hf(request: Any, ask: Ask, decoding: Decoding) -> HFAnswer | list[HFAnswer]:
    """One HF request through `ask` (pairs, top_k, decoding -> predictions): one answer or a list."""
    parameters = request.parameters
    top_k = parameters.top_k or 1
    # One spare candidate: dropping the empty answer (handle_impossible_answer false) still leaves top_k.
    prediction = ask([(request.inputs.context, request.inputs.question)], top_k + 1, hf_decoding(decoding, parameters))
    answers = hf_answers(prediction[0], top_k, parameters.handle_impossible_answer)
    if parameters.top_k in (None, 1):
        return (
            answers[0]
            if answers
            else HFAnswer(answer="", score=min(1.0, prediction[0].no_answer_probability), start=0, end=0)
        )
    return answers

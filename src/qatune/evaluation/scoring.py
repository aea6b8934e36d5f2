"""Score a model on a data set through the answering seam: EM/F1, buckets, calibration error, speed.

One path for every backend (`answering.answerer.SpanAnswerer`): the torch backend adds the true
evaluation loss (cross-entropy on gold spans), an ONNX export has none. numpy only: scoring an
export never imports torch.
"""

from __future__ import annotations

import time

from tqdm.auto import tqdm

from qatune.answering.answerer import SpanAnswerer
from qatune.answering.decoding import Decoding, Logits, Prediction, predict_examples
from qatune.data.squad import Example, QADataset
from qatune.data.windows import Windows, check_windows
from qatune.evaluation.metrics import (
    Reliability,
    best_over_golds,
    best_threshold,
    expected_calibration_error,
    reliability,
    squad_scores,
)
from qatune.evaluation.results import SPLIT_KEYS, EvalResult, Scores


def _top_probabilities(prediction: Prediction) -> tuple[float, float]:
    """(calibrated, raw) probability of the top answer; 0 for a question with no candidate span."""
    if not prediction.answers:
        return 0.0, 0.0
    top = prediction.answers[0]
    return top.probability, top.probability if top.raw_probability is None else top.raw_probability


def reliability_bins(result: EvalResult, dataset: QADataset) -> Reliability:
    """Reliability bins (`evaluation.metrics.reliability`) of the calibrated and of the raw top-1 probability."""
    hits = [result.exact[e.id] for e in dataset.examples]
    return {
        name: reliability([result.probabilities[e.id][k] for e in dataset.examples], hits)
        for name, k in (("calibrated", 0), ("raw", 1))
    }


def dataset_logits(answerer: SpanAnswerer, dataset: QADataset, progress_bar: bool) -> tuple[Windows, Logits]:
    """Windows of every question of `dataset` and their logits (with the mean gold-span loss where the
    backend can compute it)."""
    windows = answerer.windows_of(dataset.examples)
    check_windows(windows, dataset, answerer.window.max_seq_length)
    with tqdm(
        total=len(windows), desc="evaluating", unit="window", disable=not progress_bar, dynamic_ncols=True
    ) as bar:
        logits = answerer.logits(windows, bar.update, True)
    return windows, logits


def best_spans(examples: list[Example], predicted: list[Prediction]) -> dict[str, str]:
    """id -> the best span of each question ("" where it has none), whether or not "no answer" won."""
    return {e.id: next((a.text for a in p.answers if a.text), "") for e, p in zip(examples, predicted)}


def no_answer_scores(
    examples: list[Example], predicted: list[Prediction], spans: dict[str, str] | None = None
) -> dict[str, float]:
    """The official v2 script's best-threshold figures: EM/F1 if "no answer" were given exactly when the
    no-answer probability is over the best threshold (and those thresholds). `spans`: `best_spans`, if
    the caller has them already."""
    spans = best_spans(examples, predicted) if spans is None else spans
    na_probs = {e.id: p.no_answer_probability for e, p in zip(examples, predicted)}
    references = {e.id: list(e.answers) for e in examples}
    out: dict[str, float] = {}
    for metric, name in (("exact", "exact_match"), ("f1", "f1")):
        threshold, score = best_threshold(spans, na_probs, references, metric)
        out[f"best_{name}"], out[f"best_{name}_threshold"] = score, threshold
    return out


def evaluate(
    answerer: SpanAnswerer, dataset: QADataset, progress_bar: bool = False, max_answer_length: int | None = None
) -> EvalResult:
    """EM/F1, buckets, evaluation loss (torch backends), calibration error and speed of `answerer`'s
    answers on `dataset`; for a model with a null answer also HasAns/NoAns scores and the
    best-threshold figures. `max_answer_length` defaults to the answerer's own."""
    began = time.perf_counter()
    windows, logits = dataset_logits(answerer, dataset, progress_bar)
    decoding = answerer.decoding_for(max_answer_length)
    predicted = predict_examples(dataset.examples, windows, logits, 2, decoding)
    return _scored(dataset.examples, predicted, decoding, logits.loss, time.perf_counter() - began)


def _scored(
    examples: list[Example], predicted: list[Prediction], decoding: Decoding, loss: float | None, seconds: float
) -> EvalResult:
    """The scores of one evaluation's predictions (shared by every backend)."""
    predictions = {e.id: (p.answers[0].text if p.answers else "") for e, p in zip(examples, predicted)}
    references = {e.id: list(e.answers) for e in examples}
    official = squad_scores(predictions, references)
    probabilities = {e.id: _top_probabilities(p) for e, p in zip(examples, predicted)}
    exact = {qid: best_over_golds(predictions[qid], golds)[0] for qid, golds in references.items()}
    hits = list(exact.values())
    null: dict[str, float | None] = {}
    no_answer: dict[str, float] = {}
    spans: dict[str, str] = {}
    if decoding.with_null:
        spans = best_spans(examples, predicted)
        null = {**no_answer_scores(examples, predicted, spans), "null_threshold": decoding.null_threshold}
        no_answer = {e.id: p.no_answer_probability for e, p in zip(examples, predicted)}
    scores = Scores(
        exact_match=official["exact_match"],
        f1=official["f1"],
        total=int(official["total"]),
        correct=int(official["correct"]),
        similar=int(official["similar"]),
        incorrect=int(official["incorrect"]),
        ece=expected_calibration_error([probabilities[q][0] for q in references], hits),
        ece_raw=expected_calibration_error([probabilities[q][1] for q in references], hits),
        eval_loss=loss,
        seconds=seconds,
        questions_per_second=len(examples) / seconds,
        splits={k: official[k] for k in SPLIT_KEYS if k in official},
        null=null,
    )
    return EvalResult(predictions, scores, probabilities, exact, no_answer, spans)

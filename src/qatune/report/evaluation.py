"""`qatune evaluate --report DIR`: the metrics, the predictions, how well the confidence is calibrated,
and where the model fails (`errors.json`: EM/F1 by question word, answer and context length, and the
20 most confident wrong answers). For a model with a null answer also each question's no-answer
probability (`na_probs.json`, the official v2 script's na_prob_file) and the scores at a range of
no-answer thresholds (`thresholds.csv`).

The reliability bins (10 equal-width bins of the top-1 probability, exact match in each) are given for
the calibrated probability the model answers with and for the raw span softmax, as a table (CSV), in
`evaluation.json` and as a figure.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from qatune.data.squad import QADataset
from qatune.evaluation.analysis import analyse
from qatune.evaluation.metrics import Reliability, threshold_curve
from qatune.evaluation.results import EvalResult
from qatune.evaluation.scoring import reliability_bins
from qatune.figures import reliability_diagram
from qatune.io import JsonObject, atomic_write_json, atomic_write_text, read_json
from qatune.layout import (
    EVAL_ERRORS,
    EVAL_NA_PROBS,
    EVAL_PREDICTIONS,
    EVAL_REPORT,
    RELIABILITY_FIGURE,
    RELIABILITY_TABLE,
    THRESHOLD_TABLE,
)
from qatune.paths import make_folder


def _csv(bins: Reliability) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["probability", "bin_low", "bin_high", "questions", "mean_probability", "exact_match"])
    for name, rows in bins.items():
        for b in rows:
            writer.writerow([name, b["low"], b["high"], b["questions"], b["confidence"], b["accuracy"]])
    return out.getvalue()


THRESHOLD_GRID = [round(0.05 * i, 2) for i in range(21)]


def thresholds_csv(result: EvalResult, dataset: QADataset) -> str:
    """The scores at each no-answer threshold of a 0.05 grid, the model's saved one and the best-F1 one
    (column `which`): how far the figures move with the threshold. Thresholds are written in full, so
    that `calibrate --null-threshold` given one scores exactly its row."""
    marks: dict[float, str] = {}
    for label in ("null_threshold", "best_f1_threshold"):
        value = result.scores.null.get(label)
        if value is not None:  # the saved one may be the best one: "saved;best_f1"
            name = "saved" if label == "null_threshold" else "best_f1"
            marks[float(value)] = f"{marks[float(value)]};{name}" if float(value) in marks else name
    thresholds = sorted({*THRESHOLD_GRID, *marks})
    references = {e.id: list(e.answers) for e in dataset.examples}
    rows = threshold_curve(result.spans, result.no_answer, references, thresholds)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["threshold", "which", "answered", "exact_match", "f1", "HasAns_f1", "NoAns_exact"])
    for row in rows:
        figures = [row["answered"], row["exact_match"], row["f1"], row["HasAns_f1"], row["NoAns_exact"]]
        writer.writerow(
            [repr(row["threshold"]), marks.get(row["threshold"], "")]  # exact: to copy into --null-threshold
            + ["" if v is None else f"{v:.2f}" for v in figures]
        )
    return out.getvalue()


def evaluation_summary(model: str, dataset: QADataset, result: EvalResult, fresh_head: bool) -> JsonObject:
    """The report's header (what was scored, on what) with the metrics: `evaluation.json` and `--metrics`."""
    return {"model": model, "data": dataset.source, "fresh_head": fresh_head, "notes": dataset.notes, **result.metrics}


def write_evaluation_report(folder: Path, summary: JsonObject, result: EvalResult, dataset: QADataset) -> list[Path]:
    """Write the report files into `folder` (checked beforehand by the caller); return their paths."""
    bins = reliability_bins(result, dataset)
    make_folder(folder, "--report")
    atomic_write_json(folder / EVAL_PREDICTIONS, result.predictions)
    atomic_write_text(folder / RELIABILITY_TABLE, _csv(bins))
    m = result.scores
    title = f"{Path(summary['model']).name}: ECE {m.ece:.3f} calibrated, {m.ece_raw:.3f} raw ({m.total} questions)"
    figure = reliability_diagram(bins, folder / RELIABILITY_FIGURE, title=title)
    atomic_write_json(folder / EVAL_ERRORS, analyse(result, dataset).to_dict())
    written = [
        folder / EVAL_REPORT,
        folder / EVAL_PREDICTIONS,
        folder / RELIABILITY_TABLE,
        figure,
        folder / EVAL_ERRORS,
    ]
    null_files = [folder / EVAL_NA_PROBS, folder / THRESHOLD_TABLE]
    if result.no_answer:
        atomic_write_json(null_files[0], result.no_answer)
        atomic_write_text(null_files[1], thresholds_csv(result, dataset))
        written += null_files
    else:  # an earlier report of a model with a null answer, overwritten: its files would not match
        for path in null_files:
            path.unlink(missing_ok=True)
    atomic_write_json(folder / EVAL_REPORT, {**summary, "reliability": bins})  # last: marks a whole report
    return written


def report_lines(folder: Path) -> list[str]:
    """What `evaluate --report` prints: where the report is, and the question words answered worst."""
    worst = sorted(read_json(folder / EVAL_ERRORS, "error analysis")["by_question_word"], key=lambda g: g["f1"])
    shown = ", ".join(f"{g['name']} F1 {g['f1']:.1f} ({g['questions']})" for g in worst[:3])
    thresholds = f", {THRESHOLD_TABLE}" if (folder / THRESHOLD_TABLE).exists() else ""
    return [
        f"report: {folder}/ ({EVAL_REPORT}, {RELIABILITY_FIGURE}, {EVAL_ERRORS}{thresholds})",
        f"  weakest question words: {shown}",
    ]

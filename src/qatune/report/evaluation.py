"""`qatune evaluate --report DIR`: the metrics, the predictions and how well the confidence is calibrated.

The reliability bins (10 equal-width bins of the top-1 probability, exact match in each) are given for
the calibrated probability the model answers with and for the raw span softmax, as a table (CSV), in
`evaluation.json` and as a figure.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from qatune.data.squad import QADataset
from qatune.evaluation.metrics import Reliability
from qatune.evaluation.results import EvalResult
from qatune.evaluation.scoring import reliability_bins
from qatune.figures import reliability_diagram
from qatune.io import JsonObject, atomic_write_json, atomic_write_text
from qatune.layout import EVAL_PREDICTIONS, EVAL_REPORT, RELIABILITY_FIGURE, RELIABILITY_TABLE
from qatune.paths import make_folder


def _csv(bins: Reliability) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["probability", "bin_low", "bin_high", "questions", "mean_probability", "exact_match"])
    for name, rows in bins.items():
        for b in rows:
            writer.writerow([name, b["low"], b["high"], b["questions"], b["confidence"], b["accuracy"]])
    return out.getvalue()


def write_evaluation_report(folder: Path, summary: JsonObject, result: EvalResult, dataset: QADataset) -> list[Path]:
    """Write the report files into `folder` (checked beforehand by the caller); return their paths."""
    bins = reliability_bins(result, dataset)
    make_folder(folder, "--report")
    atomic_write_json(folder / EVAL_PREDICTIONS, result.predictions)
    atomic_write_text(folder / RELIABILITY_TABLE, _csv(bins))
    m = result.scores
    title = f"{Path(summary['model']).name}: ECE {m.ece:.3f} calibrated, {m.ece_raw:.3f} raw ({m.total} questions)"
    figure = reliability_diagram(bins, folder / RELIABILITY_FIGURE, title=title)
    atomic_write_json(folder / EVAL_REPORT, {**summary, "reliability": bins})  # last: marks a whole report
    return [folder / EVAL_REPORT, folder / EVAL_PREDICTIONS, folder / RELIABILITY_TABLE, figure]

"""The study report's error analysis: where each model fails on the test slice, so a user sees what to
label next (the same analysis as `evaluate --report`'s errors.json, `qatune.evaluation.analysis`)."""

from __future__ import annotations

from qatune.evaluation.analysis import ErrorAnalysis, Group
from qatune.report.document import Block, Heading, Para, Table
from qatune.report.results import SliceEval, StudyResults

MIN_GROUP = 5  # questions a question word needs to be named the weakest (one question is no evidence)
SHOWN_WRONG = 5  # most confident wrong answers shown in the report (all 20 are in results.json)
BREAKDOWNS = (
    ("question word", "by_question_word"),
    ("answer length", "by_answer_length"),
    ("context length", "by_context_length"),
)


def _analysed(results: StudyResults) -> dict[str, ErrorAnalysis]:
    """Each model's analysis on the test slice, by label: the untuned model of the comparison first."""
    evals: list[tuple[str, SliceEval | None]] = []
    if results.compare and results.compare.before == "untuned":  # else the base is an experiment, listed below
        evals.append((results.compare.base_label, results.compare.untuned))
    evals += [(e.name, e.test_eval) for e in results.models()]  # a twin repeats its model
    return {label: scored.errors for label, scored in evals if scored is not None and scored.errors is not None}


def _breakdown_table(analysed: dict[str, ErrorAnalysis]) -> Table:
    """F1 of every model in each group (the questions in it in brackets)."""
    rows = []
    for title, attr in BREAKDOWNS:
        per_model: dict[str, dict[str, Group]] = {
            label: {g.name: g for g in getattr(a, attr)} for label, a in analysed.items()
        }
        names = list(dict.fromkeys(name for groups in per_model.values() for name in groups))
        for name in names:
            found = [groups.get(name) for groups in per_model.values()]
            size = next(g.questions for g in found if g is not None)
            rows.append([title, name, size, *(f"{g.f1:.1f}" if g else "-" for g in found)])
    header = ["by", "group", "questions", *(f"{label} F1" for label in analysed)]
    return Table(header, rows, "Table 5: F1 on the test slice by question word, answer length and context length")


def _wrong_table(label: str, analysis: ErrorAnalysis) -> Table:
    rows = [
        [w.question, w.prediction or "(no answer)", " | ".join(w.gold) or "(no answer)", f"{w.probability:.3f}"]
        for w in analysis.most_confident_wrong[:SHOWN_WRONG]
    ]
    return Table(
        ["question", "answer given", "gold answers", "probability"],
        rows,
        f"Table 6: {label}'s most confident wrong answers",
    )


def failure_blocks(results: StudyResults) -> list[Block]:
    """Section 5: the breakdown table for every model, then the most confident wrong answers of the
    compared experiment (else the first one)."""
    analysed = _analysed(results)
    if not analysed:
        return []  # results from before the analysis existed
    chosen = results.compare.experiment if results.compare else results.experiments[0].name
    folder = next((e.config.output_dir for e in results.experiments if e.name == chosen), None)
    chosen = next((e.name for e in results.models() if e.config.output_dir == folder), chosen)  # a twin: its model
    label = chosen if chosen in analysed else next(iter(analysed))
    groups = analysed[label].by_question_word
    weakest = min([g for g in groups if g.questions >= MIN_GROUP] or groups, key=lambda g: g.f1)
    return [
        Heading("5. Where the models fail"),
        Para(
            f"{label} answers '{weakest.name}' questions worst (F1 {weakest.f1:.1f} on {weakest.questions}). "
            f"Groups with few questions are noisy. The {SHOWN_WRONG} answers below were given with the highest "
            f"probability and are wrong: label more questions like them. All 20 of each model, with their "
            f"context, are under `errors` in results.json."
        ),
        _breakdown_table(analysed),
        _wrong_table(label, analysed[label]),
    ]

"""The study report: every table and figure of the study, filled from a run's `results.json`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import yaml

from qatune.figures import metric_lines, reliability_diagram
from qatune.fmt import cell
from qatune.io import atomic_write_text
from qatune.layout import (
    EM_FIGURE,
    FIGURES,
    HISTORY_FIGURE,
    IMPORTANCE_FIGURE,
    RELIABILITY_FIGURE,
    STUDY_REPORT,
    STUDY_SWEEP,
    SWEEP_RESULTS,
    TRIAL_FIGURES,
)
from qatune.report.document import Block, Code, Figure, Heading, Para, Table, to_html, to_markdown
from qatune.report.failures import failure_blocks
from qatune.report.results import AskedQuestion, Comparison, ExperimentResult, SliceEval, StudyResults
from qatune.sweep.results import SweepReport, TrialRow


class ReportTarget(Protocol):
    """Where and how a report is written (a study file's `report:` section, `study.spec.ReportSpec`)."""

    @property
    def dir(self) -> Path: ...
    @property
    def formats(self) -> Sequence[str]: ...
    @property
    def title(self) -> str | None: ...


PICK_TITLES = {
    "lowest_train_loss": "lowest training loss",
    "most_correct": "most correct answers",
    "best_f1": "best F1",
    "lowest_eval_loss": "lowest evaluation loss",
}


def _model(model: str) -> str:
    """A model as a table cell: a local folder (another experiment's, say) by its name, not its long path."""
    return Path(model).name if Path(model).is_dir() else model


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary(results: StudyResults) -> list[str]:
    """What the numbers say, in a few generated sentences."""
    lines = []
    scored = [(e, e.test_eval.scores) for e in results.experiments if e.test_eval]
    if scored:
        best, t = max(scored, key=lambda pair: pair[1].exact_match)
        lines.append(
            f"Best experiment on the test slice ({t.total} questions): {best.name} "
            f"({_model(best.config.model)}), EM {_pct(t.exact_match)}, F1 {_pct(t.f1)}."
        )
    compare = results.compare
    if compare:
        u, f = compare.untuned.scores, compare.fine_tuned.scores
        verb = "raised" if f.exact_match >= u.exact_match else "lowered"
        lines.append(
            f"Fine-tuning {compare.model} ({compare.experiment}) {verb} EM from {_pct(u.exact_match)} "
            f"to {_pct(f.exact_match)} ({f.exact_match - u.exact_match:+.2f} points) and F1 from "
            f"{_pct(u.f1)} to {_pct(f.f1)}; correct answers went from {u.correct} to {f.correct}."
        )
    if results.sweep:
        lines.append(_sweep_sentence(results.sweep))
    for data in results.data:
        lines += data.notes
    return lines


def _sweep_sentence(sweep: SweepReport) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in sweep.counts.items() if v)
    metric, best = sweep.metric, sweep.best
    found = f"; its best trial was {best.name} ({metric['name']} {cell(best.value)})." if best else "."
    return f"The sweep ({sweep.method}, {metric['name']} {metric['goal']}) ran {counts}{found}"


SWEEP_CAPTIONS = {
    TRIAL_FIGURES["train_loss"]: "Figure 1: training loss of the top trials",
    TRIAL_FIGURES["eval_loss"]: "Figure 2: evaluation loss of the top trials",
    TRIAL_FIGURES["correct"]: "Figure 3: correct answers of the top trials",
    HISTORY_FIGURE: "Optimisation history (Optuna)",
    IMPORTANCE_FIGURE: "Parameter importances (Optuna, PED-ANOVA)",
}


def _picks_table(sweep: SweepReport, rows: dict[str, TrialRow]) -> Table:
    """Table 1: the trial behind each of the study's picks (best F1, lowest train loss, ...)."""
    params, titles = sweep.params, dict[str, list[str]]()
    for pick, name in sweep.picks.items():  # a trial that is several picks is one row naming them all
        titles.setdefault(name, []).append(PICK_TITLES.get(pick, pick))
    picks = [
        [name, ", ".join(picked), *[rows[name].params[p] for p in params]]
        + [rows[name].metrics[k] for k in ("train_loss", "eval_loss", "correct", "f1")]
        for name, picked in titles.items()
    ]
    header = ["exploration", "pick", *params, "train loss", "eval loss", "correct", "F1"]
    caption = "Table 1: the sweep's extreme explorations"
    if len(titles) == 1 and len(sweep.picks) > 1:
        caption += " (one trial is every extreme: the others did not beat it on any figure)"
    return Table(header, picks, caption)


def _top_table(sweep: SweepReport, rows: dict[str, TrialRow]) -> Table:
    """The best trials by the sweep's metric."""
    params, top = sweep.params, [rows[name] for name in sweep.top]
    cells = [
        [r.name, *[r.params[p] for p in params]]
        + [r.metrics[k] for k in ("train_loss", "eval_loss", "exact_match", "f1", "correct")]
        + [r.state]
        for r in top
    ]
    header = ["trial", *params, "train loss", "eval loss", "EM", "F1", "correct", "state"]
    return Table(header, cells, f"Top {len(top)} trials by {sweep.metric['name']}")


def sweep_blocks(sweep: SweepReport, folder: Path) -> list[Block]:
    """Section 1: how the sweep searched, its picks, its top trials and the figures `sweep show` drew."""
    rows = {r.name: r for r in sweep.trials}
    counts = ", ".join(f"{v} {k}" for k, v in sweep.counts.items() if v)
    blocks: list[Block] = [
        Heading("1. Hyperparameter sweep"),
        Para(
            f"Method {sweep.method}, metric {sweep.metric['name']} "
            f"({sweep.metric['goal']}), searching {', '.join(sweep.params)}. Trials: {counts}."
        ),
        _picks_table(sweep, rows),
        _top_table(sweep, rows),
    ]
    for name, caption in SWEEP_CAPTIONS.items():
        path = folder / STUDY_SWEEP / SWEEP_RESULTS / FIGURES / name
        if path.exists():
            blocks.append(Figure(path, caption))
    return blocks


def _settings_table(experiments: list[ExperimentResult]) -> Table:
    """Table 2: what each experiment trained, and which settings came from the sweep."""
    settings, mixing = [], any(e.config.mix for e in experiments)
    for e in experiments:
        c = e.config
        picked = ", ".join(f"{k} from {v}" for k, v in e.from_sweep.items())
        length = f"{c.max_steps} steps" if c.max_steps else c.num_train_epochs
        questions = c.train_sample or c.train_limit or "all"
        mixed = [Path(c.mix).name if c.mix else "-"] if mixing else []
        row = [e.name, _model(c.model), c.train_batch_size, c.learning_rate, length, questions, *mixed]
        settings.append([*row, picked or "-"])
    header = ["name", "pre-trained model", "batch size", "learning rate", "epochs", "train questions"]
    header += [*(["mixed in (per question)"] if mixing else []), "from the sweep"]
    first: dict[str, str] = {}  # a folder -> the experiment that trained it
    twins = [f"{e.name} has the settings of {first[e.config.output_dir]}" for e in experiments
             if first.setdefault(e.config.output_dir, e.name) != e.name]  # fmt: skip
    said = f" ({'; '.join(twins)}: one model, trained once)" if twins else ""
    return Table(header, settings, f"Table 2: fine-tuning experiments{said}")


def _score(scored: SliceEval | None, name: str) -> str:
    """One figure (exact_match, f1) of an evaluation the experiment may not have had, as a table cell."""
    value: float | None = getattr(scored.scores, name) if scored else None
    return _pct(value)


def _results_table(results: StudyResults) -> Table:
    """Table 3: each experiment's train and test scores, steps and minutes."""
    rows = []
    for e in results.experiments:
        c = e.config
        scores = [_score(e.train_eval, "exact_match"), _score(e.test_eval, "exact_match"), _score(e.test_eval, "f1")]
        scores += [_score(o, m) for o in e.other_evals for m in ("exact_match", "f1")]
        minutes = round((e.seconds or 0) / 60, 1)
        rows.append([e.name, _model(c.model), c.train_batch_size, c.learning_rate, *scores, e.steps, minutes])
    others = next((e.other_evals for e in results.experiments if e.other_evals), ())
    more = [f"{label} on {Path(o.data).name}" for o in others for label in ("EM", "F1")]
    slice_note = (
        f"train EM on {results.train_slice} of each experiment's own training questions; "
        if results.train_slice
        else ""
    )
    header = ["name", "pre-trained model", "batch size", "learning rate", "train EM", "test EM", "test F1", *more]
    return Table([*header, "steps", "minutes"], rows, f"Table 3: results ({slice_note}test on {_test_size(results)})")


def experiment_blocks(results: StudyResults, folder: Path) -> list[Block]:
    """Section 2: the experiments' settings, their EM during training, and their results."""
    experiments = results.experiments
    blocks: list[Block] = [Heading("2. Fine-tuning"), _settings_table(experiments)]
    figure = metric_lines(
        {e.name: [h.to_dict() for h in e.history] for e in results.models()},  # a twin's line is its model's
        "exact_match",
        folder / FIGURES / EM_FIGURE,
        title="EM on the dev slice during training",
        ylabel="exact match (%)",
        x="epoch",
    )
    if figure:
        blocks.append(Figure(figure, "Figure 4: EM of each experiment after each evaluation"))
    return [*blocks, _results_table(results)]


def _test_size(results: StudyResults) -> str:
    scored = [e.test_eval.scores for e in results.experiments if e.test_eval]
    total = scored[0].total if scored else "?"
    return f"{total} questions of {Path(results.test_slice[0]).name}"


def compare_blocks(compare: Comparison, results: StudyResults, folder: Path) -> list[Block]:
    pairs = (
        (compare.base_label, compare.untuned),
        (f"{compare.experiment} (fine-tuned)", compare.fine_tuned),
    )
    v2 = any("NoAns_exact" in m.scores.splits for _, m in pairs)  # the test set has unanswerable questions
    rows = []
    for label, m in pairs:
        s = m.scores
        no_answer = [_pct(s.splits.get("NoAns_exact"))] if v2 else []
        loss = "-" if s.eval_loss is None else round(s.eval_loss, 3)
        rows.append([label, s.correct, s.similar, s.incorrect, _pct(s.exact_match), _pct(s.f1), *no_answer, loss])
    return [
        Heading("3. Fine-tuned against untuned" if compare.before == "untuned" else "3. Before and after"),
        Para(
            "correct: exact match after SQuAD normalisation; similar: not correct, token F1 >= 0.5 with a gold "
            "answer, never empty; incorrect: the rest. F1 is the partial-credit score (official SQuAD F1)."
        ),
        Table(
            ["model", "correct", "similar", "incorrect", "EM", "F1", *(["no answer right"] if v2 else []), "eval loss"],
            rows,
            f"Table 4: test results on {_test_size(results)}",
        ),
        *reliability_blocks(pairs[1][0], pairs[1][1], folder),
    ]


def reliability_blocks(label: str, scored: SliceEval, folder: Path) -> list[Block]:
    """The fine-tuned model's reliability diagram on the test slice (absent in results from before it)."""
    if not scored.reliability:
        return []
    s = scored.scores
    figure = reliability_diagram(
        scored.reliability,
        folder / FIGURES / RELIABILITY_FIGURE,
        title=f"{label}: ECE {s.ece:.3f} calibrated, {s.ece_raw:.3f} raw",
    )
    return [
        Figure(figure, "Figure 5: how often the top answer is right (exact match) against its probability"),
        Para(
            "A calibrated model's points lie on the diagonal: of the answers given with probability 0.7, "
            "seven in ten are right. ECE is the question-weighted mean distance from it (10 bins)."
        ),
    ]


def question_blocks(questions: list[AskedQuestion]) -> list[Block]:
    rows = []
    for i, q in enumerate(questions):
        for model, answers in q.answers.items():
            shown = "; ".join(
                f"{rank}. {repr(a.text) if a.text else 'no answer in this context'} ({min(1.0, a.probability):.3f})"
                for rank, a in enumerate(answers, 1)
            )
            rows.append([i, q.question, model, shown])
    contexts = [[i, q.context] for i, q in enumerate(questions)]
    return [
        Heading("4. Answering questions"),
        Table(["id", "context"], contexts, "Contexts"),
        Table(
            ["id", "question", "model", "top answers (confidence)"],
            rows,
            "Each model's top answers with their probabilities",
        ),
    ]


def reproduce_blocks(results: StudyResults) -> list[Block]:
    named = {d.resolved for d in results.data if d.spec != d.resolved}
    data = [
        [d.spec, d.resolved, (d.sha256 or "-")[:16], "; ".join(d.notes) or "-"]
        for d in results.data
        if d.spec != d.resolved or d.resolved not in named
    ]
    stages = [[name, t.seconds, "cached" if t.cached else "ran"] for name, t in results.stages.items()]
    return [
        Heading("Reproduce"),
        Para(
            f"Re-run with `qatune run STUDY.yaml` (stages whose inputs did not change are skipped). "
            f"Total wall time of this run: {results.seconds} s."
        ),
        Table(["package", "version"], [[k, v] for k, v in results.versions.items()], "Versions"),
        Table(["data spec", "file", "sha256 (first 16)", "notes"], data, "Data"),
        Table(["stage", "seconds", "this run"], stages, "Stages and wall times"),
        Code(yaml.safe_dump(results.study, sort_keys=False, allow_unicode=True), "yaml"),
    ]


def build(results: StudyResults, folder: Path, title: str | None = None) -> list[Block]:
    blocks: list[Block] = [Heading(title or f"qatune study: {results.name}", 1)]
    if results.description:
        blocks.append(Para(results.description))
    blocks += [Heading("Summary")] + [Para(line) for line in summary(results)]
    if results.sweep:
        blocks += sweep_blocks(results.sweep, folder)
    blocks += experiment_blocks(results, folder)
    if results.compare:
        blocks += compare_blocks(results.compare, results, folder)
    if results.questions:
        blocks += question_blocks(results.questions)
    return blocks + failure_blocks(results) + reproduce_blocks(results)


def write_report(results: StudyResults, report: ReportTarget) -> list[Path]:
    """report.md and/or report.html in the study folder, written atomically."""
    folder = Path(report.dir)
    blocks = build(results, folder, report.title)
    written = []
    if "markdown" in report.formats:
        written.append(folder / STUDY_REPORT["markdown"])
        atomic_write_text(written[-1], to_markdown(blocks, folder))
    if "html" in report.formats:
        written.append(folder / STUDY_REPORT["html"])
        title = blocks[0].text if isinstance(blocks[0], Heading) else "qatune study"
        atomic_write_text(written[-1], to_html(blocks, title))
    return written

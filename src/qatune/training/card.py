"""The model card (README.md) of a trained model folder, as the Hugging Face Hub reads it.

Written by qatune rather than by the Trainer's automatic card, which drops local data sets and has no
exact_match. The YAML front matter (library, pipeline tag, base model, data, licence, tags and a
`model-index` of EM/F1 results) is built with huggingface_hub's own `ModelCardData`/`EvalResult`, so
the Hub, `ModelCard.load` and `metadata_load` read it; the prose says how the model was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qatune.errors import ModelError
from qatune.evaluation.results import Scores
from qatune.io import atomic_write_text
from qatune.layout import CARD_FILE
from qatune.models.settings import Calibration
from qatune.training.summary import EvalRecord, RunSummary

DEFAULT_BASE = ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0")  # the embedded `default` model


def _dataset(source: str) -> tuple[str, str]:
    """(Hub dataset type, readable name) of a data source: SQuAD files are `squad`, others their file name."""
    name = Path(source).name
    if "squad" in name.lower() or source.startswith("squad"):
        return ("squad_v2" if "v2" in name.lower() or source.startswith("squad_v2") else "squad"), name
    return name.split(".")[0] or "local", name


def eval_results(scores: Scores, source: str, split: str) -> list[Any]:
    """EM and F1 of one evaluation as Hub `EvalResult`s."""
    from huggingface_hub import EvalResult

    kind, name = _dataset(source)
    return [
        EvalResult(
            task_type="question-answering",
            task_name="Extractive Question Answering",
            dataset_type=kind,
            dataset_name=name,
            dataset_config=f"{scores.total} questions",  # the Hub groups results by type, config and split
            dataset_split=split,
            metric_type=metric,
            metric_value=round(value, 2),
            metric_name=label,
        )
        for metric, label, value in (("exact_match", "EM", scores.exact_match), ("f1", "F1", scores.f1))
    ]


def _training(summary: RunSummary, command: str | None) -> list[str]:
    """The card's training section: data, settings, steps and the command."""
    c, train = summary.config, summary.train_data
    settings = ", ".join(
        f"{k} {getattr(c, k)}"
        for k in ("learning_rate", "train_batch_size", "num_train_epochs", "max_steps", "warmup_ratio", "weight_decay")
        if getattr(c, k) is not None
    )
    precision = summary.precision.used if summary.precision else None
    return [
        "## Training",
        "",
        f"- Data: {train.source} ({train.questions} questions, {train.windows} windows); " + "; ".join(train.notes),
        f"- Settings: {settings}, dropout {c.dropout}, precision {precision}, "
        f"windows {c.max_seq_length}/{c.doc_stride}, seed {c.seed}.",
        f"- {summary.steps} optimizer steps, {summary.windows_seen} windows, {summary.seconds} s.",
        f"- Command: `{command}`" if command else "- Made with the qatune Python API.",
        "",
    ]


def _results(summary: RunSummary, history: list[EvalRecord]) -> list[str]:
    """The saved weights' evaluation and the history's EM/F1 table."""
    final, chosen, lines = summary.final_eval, summary.best, []
    if final and chosen and chosen.loaded:
        lines += [
            f"The saved weights are the best evaluation's (step {chosen.step}, {chosen.metric} "
            f"{chosen.value:.4g}): EM {final.scores.exact_match:.2f}, F1 {final.scores.f1:.2f} on the dev slice.",
            "",
        ]
    elif final:
        lines += [f"Last evaluation: EM {final.scores.exact_match:.2f}, F1 {final.scores.f1:.2f} on the dev slice.", ""]
    if history:
        rows = [f"| {r.step} | {r.scores.exact_match:.2f} | {r.scores.f1:.2f} |" for r in history]
        lines += ["| step | EM | F1 |", "| --- | --- | --- |", *rows, ""]
    return lines


def _confidence(calibration: Calibration | None) -> list[str]:
    if calibration is None:
        return []
    return [
        "## Confidence",
        "",
        f"Probabilities are calibrated (temperature {calibration.temperature:.3f}, fitted on "
        f"{calibration.questions} held-out training questions to predict "
        f"{calibration.target}; calibration error {calibration.ece_before:.3f}"
        f" -> {calibration.ece_after:.3f}), see `calibration.json`.",
        "",
    ]


def _body(summary: RunSummary, history: list[EvalRecord], command: str | None, name: str) -> str:
    intro = [
        f"# {name}",
        "",
        f"An extractive question-answering model fine-tuned from `{summary.config.model}` with "
        f"qatune {summary.versions['qatune']}. Load it with transformers' `AutoModelForQuestionAnswering` "
        "or answer with `qatune ask --model FOLDER`.",
        "",
    ]
    parts = intro + _training(summary, command) + _results(summary, history) + _confidence(summary.calibration)
    return "\n".join(parts)


def write_card(folder: Path, summary: RunSummary, history: list[EvalRecord], command: str | None) -> Path:
    """README.md with Hub metadata for a trained folder: `summary` is its qatune.json, `history` the
    evaluations of its metrics.jsonl."""
    from huggingface_hub import ModelCard, ModelCardData

    model = summary.config.model
    base, license_ = DEFAULT_BASE if model == "default" else (model, "other")
    final, dev = summary.final_eval, summary.eval_data
    results = eval_results(final.scores, dev.source, "validation") if final and dev else []
    data = ModelCardData(
        base_model=base if not Path(base).exists() else None,
        datasets=[_dataset(summary.train_data.source)[0]],
        library_name="transformers",
        pipeline_tag="question-answering",
        license=license_,
        tags=["question-answering", "extractive-qa", "qatune"],
        model_name=folder.name,
        eval_results=results or None,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(summary, history, command, folder.name)}")
    atomic_write_text(folder / CARD_FILE, str(card))
    return folder / CARD_FILE


def read_card(folder: Path) -> Any:
    """The folder's model card (a `huggingface_hub.ModelCard`); missing, or metadata that does not parse,
    is one ModelError naming the file."""
    from huggingface_hub import ModelCard

    path = folder / CARD_FILE
    if not path.is_file():
        raise ModelError(f"{folder} has no model card ({CARD_FILE}); qatune train writes one")
    try:
        return ModelCard.load(path)
    except Exception as exc:  # yaml, huggingface_hub and pydantic raise many types for a damaged card
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{path}: cannot read its metadata (the YAML between the --- lines: {first}); fix or remove it"
        ) from None


def add_result(folder: Path, scores: Scores, source: str, split: str = "validation") -> Path:
    """Add (or replace) the EM/F1 of an evaluation on `source` in the card's model-index."""
    path = folder / CARD_FILE
    card = read_card(folder)
    new = eval_results(scores, source, split)
    kept = [r for r in (card.data.eval_results or []) if r.unique_identifier != new[0].unique_identifier]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or folder.name
    atomic_write_text(path, str(card))
    return path

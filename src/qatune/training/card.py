"""The model card (README.md) of a trained model folder, as the Hugging Face Hub reads it.

Written by qatune rather than by the Trainer's automatic card, which drops local data sets and has no
exact_match. The YAML front matter (library, pipeline tag, base model, data, licence, tags and a
`model-index` of EM/F1 results) is built with huggingface_hub's own `ModelCardData`/`EvalResult`, so
the Hub, `ModelCard.load` and `metadata_load` read it; the prose says how the model was made.

Later changes edit it in place, under the folder's lock and re-read under it (concurrent updates all
land): `add_result` only the front matter's `model-index` (other lines and comments stay as written),
`save_calibration` only the Confidence section, with calibration.json and qatune.json's `calibration`.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qatune.errors import ConfigError, ModelError
from qatune.evaluation.results import Scores
from qatune.io import atomic_write_json, atomic_write_text, read_json
from qatune.layout import CALIBRATION_FILE, CARD_FILE, CONFIG_FILE
from qatune.models.settings import Calibration, write_calibration
from qatune.paths import check_output_file, exclusive, holds
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


def _confidence(c: Calibration | None) -> list[str]:
    """The card's Confidence section: the temperature, and the no-answer threshold of a model with one."""
    if c is None:
        return []
    null = ""
    if c.null_threshold is not None:
        how = "set by hand" if c.null_threshold_f1 is None else f"the best F1 there, {c.null_threshold_f1:.1f}"
        null = f' It answers "no answer" over a no-answer probability of {c.null_threshold:g} ({how}).'
    return [
        "## Confidence",
        "",
        f"Probabilities are calibrated (temperature {c.temperature:.3f}, fitted on {c.questions} held-out questions "
        f"of {c.data} to predict {c.target}; calibration error {c.ece_before:.3f} -> {c.ece_after:.3f}), see "
        f"`calibration.json`.{null}",
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


LOCK_WAIT = 10.0  # seconds a card or calibration update waits for another process's (milliseconds) to finish


@contextlib.contextmanager
def folder_lock(folder: Path, what: str, wait: float = LOCK_WAIT) -> Iterator[None]:
    """The folder's lock (`paths.exclusive`, the run folder's), waited for up to `wait` seconds: a card
    update is short, so a second one waits its turn; a training run holding the folder still refuses it.
    Already held by this process (`paths.holds`): nothing more to take."""
    deadline = time.monotonic() + wait
    with contextlib.ExitStack() as stack:
        while not holds(folder):
            try:
                stack.enter_context(exclusive(folder, what))
                break
            except ConfigError:  # held by another process
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
        yield


def _card_text(path: Path) -> str:
    """README.md as written, line endings included (so an edit keeps the rest byte for byte)."""
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the model card ({type(exc).__name__}: {exc})") from None


def _parsed(path: Path, text: str) -> Any:
    from huggingface_hub import ModelCard  # its own parse, so qatune reads a card as the Hub does

    try:
        return ModelCard(text)
    except Exception as exc:  # yaml, huggingface_hub and pydantic raise many types for a damaged card
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{path}: cannot read its metadata (the YAML between the --- lines: {first}); fix or remove it"
        ) from None


def read_card(folder: Path) -> Any:
    """The folder's model card (a `huggingface_hub.ModelCard`); missing, or metadata that does not parse,
    is one ModelError naming the file."""
    path = folder / CARD_FILE
    if not path.is_file():
        raise ModelError(f"{folder} has no model card ({CARD_FILE}); qatune train writes one")
    return _parsed(path, _card_text(path))


def _end(node: Any) -> int:
    """Where a YAML node's text ends: its last scalar or flow collection (a block collection's own end
    mark lies at the next key, past any comments between)."""
    import yaml

    if isinstance(node, yaml.ScalarNode) or node.flow_style:
        return int(node.end_mark.index)
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
    return max((_end(child) for child in children), default=int(node.end_mark.index))


def _with_entry(text: str, key: str, block: list[str]) -> str:
    """YAML `text` with its top-level `key` entry replaced by the lines `block` (appended when absent);
    every other character as written."""
    import yaml

    newline = "\r\n" if "\r\n" in text else "\n"
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None and (not isinstance(root, yaml.MappingNode) or root.flow_style):
        raise ValueError("the metadata is not a block mapping (one `key: value` a line)")
    pairs = root.value if root is not None else []
    indent = " " * (pairs[0][0].start_mark.column if pairs else 0)
    lines = newline.join(indent + line for line in block)
    for key_node, value in pairs:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            start, end = text.rfind("\n", 0, key_node.start_mark.index) + 1, _end(value)
            if text[end - 1 : end] == "\n":  # a block scalar's end includes its line break
                end -= 1
            stop = text.find("\n", end)
            stop = len(text) if stop < 0 else stop - 1 if text[stop - 1] == "\r" else stop
            return text[:start] + lines + text[max(stop, start) :]
    return text + ("" if not text or text.endswith("\n") else newline) + lines


def _edited(path: Path, text: str, card: Any, results: list[Any], name: str) -> str:
    """The card's text with `results` as its model-index, the rest as written; checked to read back so."""
    import yaml
    from huggingface_hub.repocard import REGEX_YAML_BLOCK
    from huggingface_hub.repocard_data import eval_results_to_model_index

    model_index = {"model-index": eval_results_to_model_index(name, results)}
    index = yaml.safe_dump(model_index, sort_keys=False, allow_unicode=True).strip()  # as huggingface_hub dumps
    match = REGEX_YAML_BLOCK.search(text)
    try:
        if match is None:  # no front matter yet: one with the model-index alone
            new = f"---\n{index}\n---\n{text}"
        else:
            new = (
                text[: match.start(2)]
                + _with_entry(match.group(2), "model-index", index.splitlines())
                + text[match.end(2) :]
            )
        after = _parsed(path, new)
        others = [{k: v for k, v in c.data.to_dict().items() if k != "model-index"} for c in (card, after)]
        facts = [
            Counter((r.unique_identifier, r.metric_type, r.metric_value) for r in rs)
            for rs in (results, after.data.eval_results or [])
        ]
        if others[0] != others[1] or after.text != card.text or facts[0] != facts[1]:
            raise ValueError("the rest of its metadata would not read back unchanged")
    except (ValueError, yaml.YAMLError) as exc:
        raise ModelError(f"{path}: cannot add a result to its metadata in place ({exc}); fix the YAML") from None
    return new


def _with_result(folder: Path, new: list[Any]) -> tuple[Path, str]:
    """The folder's card and its text with the results `new` added (or replacing those of the same slice)."""
    path, card = folder / CARD_FILE, read_card(folder)
    slices = {r.unique_identifier for r in new}
    kept = [r for r in (card.data.eval_results or []) if r.unique_identifier not in slices]
    return path, _edited(path, _card_text(path), card, kept + new, card.data.model_name or folder.name)


def check_card(folder: Path, flag: str) -> None:
    """Before the work: the folder's card exists, parses, can take a result in place and can be written,
    and no other process holds the folder."""
    _with_result(folder, [])
    check_output_file(folder / CARD_FILE, flag, overwrite=True)
    with folder_lock(folder, "its model card"):
        pass


def add_result(folder: Path, scores: Scores, source: str, split: str = "validation") -> Path:
    """Add (or replace) the EM/F1 of an evaluation on `source` in the card's model-index, the rest of
    the card as written; under the folder's lock, so concurrent updates all land."""
    with folder_lock(folder, "its model card"):
        path, text = _with_result(folder, eval_results(scores, source, split))
        atomic_write_text(path, text)
    return path


_CONFIDENCE = re.compile(r"^## Confidence[ \t]*\r?\n.*?(?=^#{1,2} |\Z)", re.MULTILINE | re.DOTALL)


def _with_confidence(text: str, calibration: Calibration) -> str:
    """The card's text with its Confidence section (appended when it has none) telling `calibration`."""
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    body = match.end() if (match := REGEX_YAML_BLOCK.search(text)) else 0
    section = "\n".join(_confidence(calibration)).rstrip()
    if "\r\n" in text:
        section = section.replace("\n", "\r\n")
    found = _CONFIDENCE.search(text, body)
    if found is None:
        return text + ("" if text.endswith("\n") else "\n") + "\n" + section + "\n"
    old = found.group()
    return text[: found.start()] + section + old[len(old.rstrip()) :] + text[found.end() :]


def _summary(folder: Path) -> dict[str, object] | None:
    """The folder's qatune.json as an object (None: it has none), to replace its `calibration`."""
    if not (folder / CONFIG_FILE).exists():
        return None
    summary = read_json(folder / CONFIG_FILE, "run summary", ModelError)
    if not isinstance(summary, dict):
        raise ModelError(f"{folder / CONFIG_FILE}: not a JSON object; fix or remove it")
    return summary


def check_calibration_folder(folder: Path, flag: str) -> None:
    """Before the fit: calibration.json, and qatune.json and the card where the folder has them, can be
    rewritten, and no other process holds the folder (the old calibration is not read: it is replaced)."""
    for name in (CALIBRATION_FILE, CONFIG_FILE, CARD_FILE):
        if name == CALIBRATION_FILE or (folder / name).exists():
            check_output_file(folder / name, flag, overwrite=True)
    _summary(folder)
    if (folder / CARD_FILE).exists():
        read_card(folder)
    with folder_lock(folder, "its calibration"):
        pass


def save_calibration(folder: Path, calibration: Calibration) -> Path:
    """Save a refitted calibration: calibration.json, qatune.json's `calibration` (what `qatune train`
    recorded) and the card's Confidence section, together under the folder's lock, the last two re-read
    under it."""
    with folder_lock(folder, "its calibration"):
        path = write_calibration(folder, calibration)
        summary = _summary(folder)
        if summary is not None:
            atomic_write_json(folder / CONFIG_FILE, {**summary, "calibration": calibration.to_dict()})
        if (folder / CARD_FILE).exists():
            card = folder / CARD_FILE
            atomic_write_text(card, _with_confidence(_card_text(card), calibration))
    return path

"""The stages of a study (`StudyRunner`): resolve data, sweep, fine-tune, evaluate, ask questions.

Each stage's result is cached in the study folder under the hash of its inputs (`cache.py`), so a
rerun redoes only what changed; fine-tuning and the sweep also resume mid-way after a kill.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from qatune.answering.decoding import Answer
from qatune.data.mix import parse_mix
from qatune.data.sources import locate
from qatune.io import JsonObject, atomic_write_json, atomic_write_text, read_jsonl
from qatune.layout import (
    DEFAULT_MODEL,
    HISTORY_FILE,
    STAGE_MARKER,
    STAGES_FILE,
    STUDY_EVALS,
    STUDY_EXPERIMENTS,
    STUDY_SWEEP,
    SWEEP_RESULTS,
)
from qatune.paths import check_output_folder, make_folder, remove_owned
from qatune.report.results import (
    AskedQuestion,
    DataRef,
    ExperimentResult,
    Slice,
    SliceEval,
    StageTime,
    answers_from_dict,
)
from qatune.study.cache import StageCache, digest, file_hash
from qatune.study.spec import Compare, Experiment, StudySpec
from qatune.sweep.results import SweepReport, TrialRow
from qatune.training.config import TrainConfig
from qatune.training.trackers import check_trackers, parse_report_to

logger = logging.getLogger(__name__)
T = TypeVar("T")


def check_study_folder(spec: StudySpec) -> Path:
    """The report folder must be new, empty, or a study folder qatune wrote (it holds stages.json)."""
    return check_output_folder(spec.report.dir, "report.dir", (STAGES_FILE,), "a qatune study folder")


class StudyRunner:
    """Runs the stages of one study and gathers everything the report shows."""

    def __init__(self, spec: StudySpec, progress_bar: bool = True) -> None:
        self.spec, self.progress_bar = spec, progress_bar
        check_trackers(parse_report_to(spec.report_to))  # before the study's folder: a tracker that cannot take runs
        self.out = check_study_folder(spec)
        make_folder(self.out, "report.dir")
        self.cache = StageCache(self.out)
        self.compare = spec.compare or Compare(spec.experiments[0].name)
        self.data: dict[str, DataRef] = {}
        self.twins: dict[str, str] = {}  # an experiment's settings but its folder -> the key of the first with them
        self.timings: dict[str, StageTime] = {}

    # -- plumbing -------------------------------------------------------------------------------
    def stage(
        self, name: str, key: str, work: Callable[[], T], dump: Callable[[T], Any], load: Callable[[Any], T]
    ) -> T:
        """Run `work` unless `name` already finished with inputs hashing to `key`; its result is cached as
        the JSON `dump` makes of it and read back with `load`."""
        record = self.cache.get(name, key)
        if record is not None:
            logger.info("%s: up to date, skipped", name)
            self.timings[name] = StageTime(record.seconds, True)
            return load(record.result)
        logger.info("%s ...", name)
        began = time.perf_counter()
        result = work()
        record = self.cache.put(name, key, time.perf_counter() - began, dump(result))
        self.timings[name] = StageTime(record.seconds, False)
        return result

    def resolve(self, spec: str, split: str) -> DataRef:
        """A data spec resolved once: the file it names (and its sha256), or the hub spec."""
        memo = f"{spec}|{split}"
        if memo not in self.data:
            concrete, notes = locate(spec, split, data_dir=self.spec.data.dir, allow_sample=self.spec.data.allow_sample)
            path = Path(concrete)
            sha = file_hash(path, self.cache.files) if path.is_file() else None
            self.data[memo] = DataRef(spec, split, concrete, sha, tuple(notes))
            self.cache.save()
        return self.data[memo]

    def model_sha(self, model: str) -> str | None:
        """A local model folder's content hash (its top-level files: weights, config, tokenizer), so a folder
        replaced by another model is not taken for the cached one; None for a hub name or `default`."""
        folder = Path(model)
        if model == DEFAULT_MODEL or not folder.is_dir():
            return None
        files = sorted(
            p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and not p.name.endswith("~")
        )
        found = digest([(p.name, file_hash(p, self.cache.files)) for p in files])
        self.cache.save()
        return found

    def resolve_mix(self, value: object) -> DataRef | None:
        """A `mix` setting (SPEC[:RATIO]) with its spec resolved like the training data's; its `resolved`
        is the whole setting again, with the file in place of the spec."""
        if not isinstance(value, str):
            return None
        mix = parse_mix(value)
        data = self.resolve(mix.spec, "train")
        return replace(data, resolved=f"{data.resolved}:{mix.ratio:g}")

    def _fresh_folder(self, folder: Path, key: str) -> None:
        """Empty `folder` if it holds work for other inputs (a changed config must not resume old work).

        Only a folder of this study that qatune marked is ever removed (`paths.remove_owned`).
        """
        marker = folder / STAGE_MARKER
        if folder.exists() and (not marker.exists() or marker.read_text().strip() != key):
            remove_owned(folder, self.out, (STAGE_MARKER,))
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, key)

    # -- stages ---------------------------------------------------------------------------------
    def run_sweep(self) -> SweepReport | None:
        from qatune.sweep import SweepOptions, parse_sweep, run_sweep, show_sweep

        sweep = self.spec.sweep
        if sweep is None:
            return None
        train = self.resolve(str(sweep.base.get("train_data", self.spec.data.train)), "train")
        test = self.resolve(str(sweep.base.get("eval_data", self.spec.data.test)), "validation")
        base = {**sweep.base, "train_data": train.resolved, "eval_data": test.resolved}
        mix = self.resolve_mix(base.get("mix"))
        raw = {**sweep.raw, "base": {**base, **({"mix": mix.resolved} if mix else {})}}
        if self.spec.sweep_count and not sweep.run_cap:
            raw["run_cap"] = self.spec.sweep_count
        swept = sweep.params.get("model")  # a sweep may search over models: each local folder by its content
        models = [base.get("model", DEFAULT_MODEL), sweep.fixed.get("model"), *(swept.grid or () if swept else ())]
        shas = [sha for m in models if m is not None and (sha := self.model_sha(str(m)))]
        key = digest(raw, train.sha256, test.sha256, mix.sha256 if mix else None, *shas)
        folder = self.out / STUDY_SWEEP
        trackers = parse_report_to(self.spec.report_to)
        options = SweepOptions(name=f"{self.spec.name}-sweep", directory=folder, report_to=trackers)

        def work() -> SweepReport:
            self._fresh_folder(folder, key)
            run_sweep(parse_sweep(raw), options, progress_bar=self.progress_bar)
            return show_sweep(options, folder / SWEEP_RESULTS)

        return self.stage("sweep", key, work, SweepReport.to_dict, SweepReport.from_dict)

    def experiment_config(
        self, experiment: Experiment, sweep: SweepReport | None, trained: Mapping[str, ExperimentResult]
    ) -> TrainConfig:
        """The experiment's TrainConfig: its settings, sweep picks filled in, data resolved, and with
        `from_experiment` the folder of the (`trained`) experiment whose model it fine-tunes further."""
        values = {"report_to": self.spec.report_to, **experiment.settings}
        if experiment.from_experiment:
            values["model"] = trained[experiment.from_experiment].config.output_dir
        for key, pick in experiment.from_sweep.items():
            row = self._pick_row(sweep, pick)
            values[key] = row.params[key] if key in row.params else self._sweep_fixed(key)
        mix = self.resolve_mix(values.get("mix"))  # after the picks: the sweep may have chosen it
        if mix:
            values["mix"] = mix.resolved
        values["train_data"] = self.resolve(str(values["train_data"]), "train").resolved
        values["eval_data"] = self.resolve(str(values["eval_data"]), "validation").resolved
        values["output_dir"] = str(self.out / STUDY_EXPERIMENTS / experiment.name)
        return TrainConfig.from_dict(values)

    def _sweep_fixed(self, key: str) -> Any:
        """A setting the sweep held fixed (a from_sweep pick may name one: every trial had it)."""
        assert self.spec.sweep is not None  # from_sweep needs a sweep section (study.spec checks it)
        return self.spec.sweep.fixed[key]

    @staticmethod
    def _pick_row(sweep: SweepReport | None, pick: str) -> TrialRow:
        from qatune.errors import QatuneError

        row = None
        if sweep is not None:
            name = (sweep.best.name if sweep.best else None) if pick == "best" else sweep.picks.get(pick)
            row = next((r for r in sweep.trials if r.name == name), None)
        if row is None:
            raise QatuneError(
                f"the sweep has no finished trial for from_sweep: {pick}; let it finish (rerun) or "
                f"set the value by hand"
            )
        return row

    def run_experiment(
        self, experiment: Experiment, sweep: SweepReport | None, trained: Mapping[str, ExperimentResult]
    ) -> ExperimentResult:
        """Fine-tune one experiment (`trained`: those before it, one of which it may start from). One whose
        settings are an earlier one's (two sweep picks that are the same trial) is that model, trained once."""
        from qatune.training.summary import EvalRecord, RunSummary
        from qatune.training.trainer import train

        config = self.experiment_config(experiment, sweep, trained)
        shas = [
            self.resolve(str(s), split).sha256
            for s, split in (
                (experiment.settings["train_data"], "train"),
                (experiment.settings["eval_data"], "validation"),
            )
        ]
        mix = self.resolve_mix(config.mix)  # its file, already resolved: for the file's hash
        # an experiment it starts from stands for its model's content; a local folder is hashed
        upstream = (
            trained[experiment.from_experiment].key if experiment.from_experiment else self.model_sha(config.model)
        )
        settings = {k: v for k, v in config.to_dict().items() if k != "report_to"}  # trackers do not change weights
        inputs = (shas, *((mix.sha256,) if mix else ()), *((upstream,) if upstream else ()))
        key = digest(settings, *inputs)
        twin = self.twins.setdefault(digest({k: v for k, v in settings.items() if k != "output_dir"}, *inputs), key)
        same = next((r for r in trained.values() if r.key == twin), None)
        if same is not None:
            logger.info("fine-tune %s: the settings of %s, so its model (trained once)", experiment.name, same.name)
            return replace(same, name=experiment.name, from_sweep=experiment.from_sweep)
        folder = Path(config.output_dir)

        def work() -> ExperimentResult:
            self._fresh_folder(folder, key)
            summary = train(config, progress_bar=self.progress_bar) or RunSummary.read(folder)
            history = [EvalRecord.from_dict(r) for r in read_jsonl(folder / HISTORY_FILE) if r.get("type") == "eval"]
            return ExperimentResult(
                experiment.name,
                key,
                config,
                summary.steps,
                summary.seconds,
                summary.final_eval,
                history,
                experiment.from_sweep,
            )

        return self.stage(
            f"fine-tune {experiment.name}", key, work, ExperimentResult.to_dict, ExperimentResult.from_dict
        )

    def run_eval(
        self, label: str, model: str, model_key: str, config: TrainConfig, data: DataRef, select: Slice
    ) -> SliceEval:
        """Score one model on one data slice; predictions go beside the metrics in evals/."""
        from qatune.answering.factory import open_answerer
        from qatune.data.sources import load_data
        from qatune.evaluation.analysis import analyse
        from qatune.evaluation.scoring import evaluate, reliability_bins

        window = {k: v for k, v in config.window.__dict__.items() if k != "use_title" or v}  # older keys stay
        key = digest(model_key, data.sha256 or data.resolved, select.to_dict(), window)

        def work() -> SliceEval:
            dataset = load_data(data.resolved, data.split)
            if select.train_slice:  # the questions the experiment trained on, then a sample of them
                dataset = dataset.select(config.train_limit, config.train_sample, config.seed)
            dataset = dataset.select(select.limit, select.sample, select.seed)
            answerer, _ = open_answerer(
                model, window=config.window, seed=config.seed, batch_size=config.eval_batch_size
            )
            result = evaluate(answerer, dataset, self.progress_bar, config.max_answer_length)
            slug = re.sub(r"[^\w.-]", "_", label, flags=re.ASCII)  # portable: no ':' (an also_data spec)
            if slug != label.replace(" ", "_"):
                slug += f"-{digest(label)[:8]}"  # two labels that differ only in such characters stay apart
            atomic_write_json(self.out / STUDY_EVALS / f"{slug}.predictions.json", result.predictions)
            errors = analyse(result, dataset)
            bins = reliability_bins(result, dataset)
            return SliceEval(label, model, data.resolved, select, result.scores, bins, errors)

        return self.stage(f"evaluate {label}", key, work, SliceEval.to_dict, SliceEval.from_dict)

    def run_questions(self, models: dict[str, tuple[str, str, int]]) -> list[AskedQuestion] | None:
        from qatune.answering.factory import open_answerer

        questions = self.spec.questions
        if questions is None:
            return None
        pairs = [(q["context"], q["question"]) for q in questions.items]
        titles = [q.get("title", "") for q in questions.items]
        answers: dict[str, list[list[Answer]]] = {}
        for label, (model, model_key, seed) in models.items():
            key = digest(model_key, questions.items, questions.top_k)

            def work(model: str = model, seed: int = seed) -> list[list[Answer]]:
                return open_answerer(model, seed=seed)[0].ask_many(pairs, questions.top_k, titles)

            answers[label] = self.stage(f"questions {label}", key, work, _dump_answers, _load_answers)
        return [
            AskedQuestion(q["context"], q["question"], {label: answers[label][i] for label in models})
            for i, q in enumerate(questions.items)
        ]


def _dump_answers(found: list[list[Answer]]) -> list[list[JsonObject]]:
    return [[a.to_dict() for a in ranked] for ranked in found]


def _load_answers(saved: list[list[JsonObject]]) -> list[list[Answer]]:
    return [answers_from_dict(ranked) for ranked in saved]

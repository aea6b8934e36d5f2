"""Run a study end to end: data -> sweep -> fine-tunes -> evaluations -> questions -> report.

Each stage's result is cached in the study folder under the hash of its inputs (`cache.py`), so a
rerun redoes only what changed; fine-tuning and the sweep also resume mid-way after a kill.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from qatune.answering.decoding import Answer
from qatune.data.sources import locate
from qatune.hardware import package_versions
from qatune.io import JsonObject, atomic_write_json, atomic_write_text, read_jsonl
from qatune.layout import (
    HISTORY_FILE,
    STAGE_MARKER,
    STAGES_FILE,
    STUDY_EVALS,
    STUDY_EXPERIMENTS,
    STUDY_RESULTS,
    STUDY_SWEEP,
    SWEEP_RESULTS,
)
from qatune.paths import check_output_folder, exclusive, make_folder, remove_owned
from qatune.report.results import (
    AskedQuestion,
    Comparison,
    DataRef,
    ExperimentResult,
    Slice,
    SliceEval,
    StageTime,
    StudyResults,
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
        raw = {**sweep.raw, "base": {**sweep.base, "train_data": train.resolved, "eval_data": test.resolved}}
        if self.spec.sweep_count and not sweep.run_cap:
            raw["run_cap"] = self.spec.sweep_count
        key = digest(raw, train.sha256, test.sha256)
        folder = self.out / STUDY_SWEEP
        trackers = parse_report_to(self.spec.report_to)
        options = SweepOptions(name=f"{self.spec.name}-sweep", directory=folder, report_to=trackers)

        def work() -> SweepReport:
            self._fresh_folder(folder, key)
            run_sweep(parse_sweep(raw), options, progress_bar=self.progress_bar)
            return show_sweep(options, folder / SWEEP_RESULTS)

        return self.stage("sweep", key, work, SweepReport.to_dict, SweepReport.from_dict)

    def experiment_config(self, experiment: Experiment, sweep: SweepReport | None) -> TrainConfig:
        """The experiment's TrainConfig: its settings, sweep picks filled in, data resolved."""
        values = {"report_to": self.spec.report_to, **experiment.settings}
        for key, pick in experiment.from_sweep.items():
            row = self._pick_row(sweep, pick)
            values[key] = row.params[key] if key in row.params else self._sweep_fixed(key)
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

    def run_experiment(self, experiment: Experiment, sweep: SweepReport | None) -> ExperimentResult:
        from qatune.training.summary import EvalRecord, RunSummary
        from qatune.training.trainer import train

        config = self.experiment_config(experiment, sweep)
        shas = [
            self.resolve(str(s), split).sha256
            for s, split in (
                (experiment.settings["train_data"], "train"),
                (experiment.settings["eval_data"], "validation"),
            )
        ]
        settings = {k: v for k, v in config.to_dict().items() if k != "report_to"}  # trackers do not change weights
        key = digest(settings, shas)
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
        from qatune.evaluation.scoring import evaluate, reliability_bins

        key = digest(model_key, data.sha256 or data.resolved, select.to_dict(), config.window.__dict__)

        def work() -> SliceEval:
            dataset = load_data(data.resolved, data.split)
            if select.train_slice:  # the questions the experiment trained on, then a sample of them
                dataset = dataset.select(config.train_limit, config.train_sample, config.seed)
            dataset = dataset.select(select.limit, select.sample, select.seed)
            answerer, _ = open_answerer(
                model, window=config.window, seed=config.seed, batch_size=config.eval_batch_size
            )
            result = evaluate(answerer, dataset, self.progress_bar, config.max_answer_length)
            slug = label.replace("/", "_").replace(" ", "_")
            atomic_write_json(self.out / STUDY_EVALS / f"{slug}.predictions.json", result.predictions)
            return SliceEval(label, model, data.resolved, select, result.scores, reliability_bins(result, dataset))

        return self.stage(f"evaluate {label}", key, work, SliceEval.to_dict, SliceEval.from_dict)

    def run_questions(self, models: dict[str, tuple[str, str, int]]) -> list[AskedQuestion] | None:
        from qatune.answering.factory import open_answerer

        questions = self.spec.questions
        if questions is None:
            return None
        pairs = [(q["context"], q["question"]) for q in questions.items]
        answers: dict[str, list[list[Answer]]] = {}
        for label, (model, model_key, seed) in models.items():
            key = digest(model_key, questions.items, questions.top_k)

            def work(model: str = model, seed: int = seed) -> list[list[Answer]]:
                return open_answerer(model, seed=seed)[0].ask_many(pairs, questions.top_k)

            answers[label] = self.stage(f"questions {label}", key, work, _dump_answers, _load_answers)
        return [
            AskedQuestion(q["context"], q["question"], {label: answers[label][i] for label in models})
            for i, q in enumerate(questions.items)
        ]


def _dump_answers(found: list[list[Answer]]) -> list[list[JsonObject]]:
    return [[a.to_dict() for a in ranked] for ranked in found]


def _load_answers(saved: list[list[JsonObject]]) -> list[list[Answer]]:
    return [answers_from_dict(ranked) for ranked in saved]


def _untuned(model: str, seed: int) -> str:
    return digest("untuned", model, seed)


def run_study(spec: StudySpec, *, progress_bar: bool = True) -> StudyResults:
    """Run (or resume) every stage of `spec`; write results.json and the report; return the results."""
    runner = StudyRunner(spec, progress_bar)
    with exclusive(runner.out, "this study"):
        runner.cache = StageCache(runner.out)  # read again under the lock: a run that held it may have added stages
        return _run_stages(runner, spec)


def _evaluate(runner: StudyRunner, result: ExperimentResult, test: DataRef, test_slice: Slice) -> ExperimentResult:
    """An experiment's scores on the test slice, and on a sample of its own training questions."""
    compare, config = runner.compare, result.config
    train_eval = None
    if compare.train_sample:
        own = runner.resolve(config.train_data, "train")
        select = Slice(sample=compare.train_sample, seed=compare.seed, train_slice=True)
        train_eval = runner.run_eval(f"{result.name} train", config.output_dir, result.key, config, own, select)
    test_eval = runner.run_eval(f"{result.name} test", config.output_dir, result.key, config, test, test_slice)
    return result.scored(train_eval, test_eval)


def _comparison(
    runner: StudyRunner, experiments: list[ExperimentResult], test: DataRef, test_slice: Slice
) -> Comparison:
    """The compared experiment against its untuned model, on the same test slice."""
    compare = runner.compare
    target = next(r for r in experiments if r.name == compare.experiment)
    config = target.config
    untuned = runner.run_eval(
        f"{config.model} untuned test", config.model, _untuned(config.model, config.seed), config, test, test_slice
    )
    assert target.test_eval is not None  # every experiment was scored on the test slice
    return Comparison(compare.experiment, config.model, untuned, target.test_eval)


def _question_models(experiments: list[ExperimentResult]) -> dict[str, tuple[str, str, int]]:
    """The models that answer the study's questions: each experiment's, and each base model untuned."""
    models = {r.name: (r.config.output_dir, r.key, r.config.seed) for r in experiments}
    for r in experiments:
        base, seed = r.config.model, r.config.seed
        models.setdefault(f"{base} (untuned)", (base, _untuned(base, seed), seed))
    return models


def _run_stages(runner: StudyRunner, spec: StudySpec) -> StudyResults:
    from qatune.report import write_report

    began = time.perf_counter()
    runner.resolve(spec.data.train, "train")
    runner.resolve(spec.data.test, "validation")
    sweep = runner.run_sweep()
    trained = [runner.run_experiment(e, sweep) for e in spec.experiments]
    compare = runner.compare
    test = runner.resolve(compare.data or spec.data.test, "validation")
    test_slice = Slice(compare.limit, compare.sample, compare.seed)
    experiments = [_evaluate(runner, e, test, test_slice) for e in trained]
    results = StudyResults(
        name=spec.name,
        description=spec.description,
        study=spec.raw,
        data=list(runner.data.values()),
        sweep=sweep,
        experiments=experiments,
        compare=_comparison(runner, experiments, test, test_slice) if spec.compare else None,
        test_slice=(test.resolved, test_slice),
        train_slice=compare.train_sample,
        questions=runner.run_questions(_question_models(experiments)),
        stages=runner.timings,
        versions=package_versions(("qatune", "torch", "transformers", "optuna", "tokenizers")),
        seconds=round(time.perf_counter() - began, 1),
    )
    atomic_write_json(spec.report.dir / STUDY_RESULTS, results.to_dict())
    return replace(results, files=[str(p) for p in write_report(results, spec.report)])

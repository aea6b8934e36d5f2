"""Run a study end to end: data -> sweep -> fine-tunes -> evaluations -> questions -> report.

Each stage's result is cached in the study folder under the hash of its inputs (`cache.py`), so a
rerun redoes only what changed; fine-tuning and the sweep also resume mid-way after a kill.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from qatune.data.sources import locate
from qatune.hardware import package_versions
from qatune.io import atomic_write_json, atomic_write_text, read_jsonl
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
from qatune.study.cache import StageCache, digest, file_hash
from qatune.study.spec import Compare, Experiment, StudySpec
from qatune.training.config import TrainConfig
from qatune.training.trackers import parse_report_to

logger = logging.getLogger(__name__)
T = TypeVar("T")


def check_study_folder(spec: StudySpec) -> Path:
    """The report folder must be new, empty, or a study folder qatune wrote (it holds stages.json)."""
    return check_output_folder(spec.report.dir, "report.dir", (STAGES_FILE,), "a qatune study folder")


class StudyRunner:
    """Runs the stages of one study and gathers everything the report shows."""

    def __init__(self, spec: StudySpec, progress_bar: bool = True) -> None:
        self.spec, self.progress_bar = spec, progress_bar
        self.out = check_study_folder(spec)
        make_folder(self.out, "report.dir")
        self.cache = StageCache(self.out)
        self.compare = spec.compare or Compare(spec.experiments[0].name)
        self.data: dict[str, dict[str, Any]] = {}
        self.timings: dict[str, dict[str, Any]] = {}

    # -- plumbing -------------------------------------------------------------------------------
    def stage(self, name: str, key: str, work: Callable[[], T]) -> T:
        """Run `work` unless `name` already finished with inputs hashing to `key`."""
        record = self.cache.get(name, key)
        if record is not None:
            logger.info("%s: up to date, skipped", name)
            self.timings[name] = {"seconds": record["seconds"], "cached": True}
            return cast(T, record["result"])  # the JSON the work returned when it ran
        logger.info("%s ...", name)
        began = time.perf_counter()
        result = work()
        record = self.cache.put(name, key, time.perf_counter() - began, result)
        self.timings[name] = {"seconds": record["seconds"], "cached": False}
        return result

    def resolve(self, spec: str, split: str) -> dict[str, Any]:
        """A data spec resolved once: the file it names (and its sha256), or the hub spec."""
        memo = f"{spec}|{split}"
        if memo not in self.data:
            concrete, notes = locate(spec, split, data_dir=self.spec.data.dir, allow_sample=self.spec.data.allow_sample)
            path = Path(concrete)
            sha = file_hash(path, self.cache.files) if path.is_file() else None
            self.data[memo] = {"spec": spec, "split": split, "resolved": concrete, "sha256": sha, "notes": notes}
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
    def run_sweep(self) -> dict[str, Any] | None:
        from qatune.sweep import SweepOptions, parse_sweep, run_sweep, show_sweep

        sweep = self.spec.sweep
        if sweep is None:
            return None
        train = self.resolve(sweep.base.get("train_data", self.spec.data.train), "train")
        test = self.resolve(sweep.base.get("eval_data", self.spec.data.test), "validation")
        raw = {**sweep.raw, "base": {**sweep.base, "train_data": train["resolved"], "eval_data": test["resolved"]}}
        if self.spec.sweep_count and not sweep.run_cap:
            raw["run_cap"] = self.spec.sweep_count
        key = digest(raw, train["sha256"], test["sha256"])
        folder = self.out / STUDY_SWEEP
        trackers = parse_report_to(self.spec.report_to)
        options = SweepOptions(name=f"{self.spec.name}-sweep", directory=folder, report_to=trackers)

        def work() -> dict[str, Any]:
            self._fresh_folder(folder, key)
            run_sweep(parse_sweep(raw), options, progress_bar=self.progress_bar)
            report = show_sweep(options, folder / SWEEP_RESULTS).to_dict()  # the stage's cached JSON
            return {
                k: report[k]
                for k in (
                    "name",
                    "method",
                    "metric",
                    "counts",
                    "best",
                    "top",
                    "picks",
                    "trials",
                    "files",
                    "columns",
                    "params",
                )
            }

        return self.stage("sweep", key, work)

    def experiment_config(self, experiment: Experiment, sweep: dict[str, Any] | None) -> TrainConfig:
        """The experiment's TrainConfig: its settings, sweep picks filled in, data resolved."""
        values = {"report_to": self.spec.report_to, **experiment.settings}
        for key, pick in experiment.from_sweep.items():
            row = self._pick_row(sweep, pick)
            values[key] = row[key]
        values["train_data"] = self.resolve(values["train_data"], "train")["resolved"]
        values["eval_data"] = self.resolve(values["eval_data"], "validation")["resolved"]
        values["output_dir"] = str(self.out / STUDY_EXPERIMENTS / experiment.name)
        return TrainConfig.from_dict(values)

    @staticmethod
    def _pick_row(sweep: dict[str, Any] | None, pick: str) -> dict[str, Any]:
        from qatune.errors import QatuneError

        sweep = sweep or {}
        name = (sweep.get("best") or {}).get("name") if pick == "best" else sweep.get("picks", {}).get(pick)
        row: dict[str, Any] | None = next((r for r in sweep.get("trials", []) if r["name"] == name), None)
        if row is None:
            raise QatuneError(
                f"the sweep has no finished trial for from_sweep: {pick}; let it finish (rerun) or "
                f"set the value by hand"
            )
        return row

    def run_experiment(self, experiment: Experiment, sweep: dict[str, Any] | None) -> dict[str, Any]:
        from qatune.training.summary import RunSummary
        from qatune.training.trainer import train

        config = self.experiment_config(experiment, sweep)
        shas = [
            self.resolve(s, split)["sha256"]
            for s, split in (
                (experiment.settings["train_data"], "train"),
                (experiment.settings["eval_data"], "validation"),
            )
        ]
        settings = {k: v for k, v in config.to_dict().items() if k != "report_to"}  # trackers do not change weights
        key = digest(settings, shas)
        folder = Path(config.output_dir)

        def work() -> dict[str, Any]:
            self._fresh_folder(folder, key)
            summary = train(config, progress_bar=self.progress_bar) or RunSummary.read(folder)
            history = [r for r in read_jsonl(folder / HISTORY_FILE) if r.get("type") == "eval"]
            return {
                "name": experiment.name,
                "key": key,
                "config": config.to_dict(),
                "steps": summary.steps,
                "seconds": summary.seconds,
                "final_eval": summary.final_eval.to_dict() if summary.final_eval else None,
                "history": history,
                "from_sweep": experiment.from_sweep,
            }

        return self.stage(f"fine-tune {experiment.name}", key, work)

    def run_eval(
        self, label: str, model: str, model_key: str, config: TrainConfig, data: dict[str, Any], select: dict[str, Any]
    ) -> dict[str, Any]:
        """Score one model on one data slice; predictions go beside the metrics in evals/."""
        from qatune.answering.factory import open_answerer
        from qatune.data.sources import load_data
        from qatune.evaluation.scoring import evaluate, reliability_bins

        key = digest(model_key, data["sha256"] or data["resolved"], select, config.window.__dict__)

        def work() -> dict[str, Any]:
            dataset = load_data(data["resolved"], data["split"])
            if "train_slice" in select:  # the questions the experiment trained on, then a sample of them
                dataset = dataset.select(config.train_limit, config.train_sample, config.seed)
            dataset = dataset.select(select.get("limit"), select.get("sample"), select.get("seed", 0))
            answerer, _ = open_answerer(
                model, window=config.window, seed=config.seed, batch_size=config.eval_batch_size
            )
            result = evaluate(answerer, dataset, self.progress_bar, config.max_answer_length)
            slug = label.replace("/", "_").replace(" ", "_")
            atomic_write_json(self.out / STUDY_EVALS / f"{slug}.predictions.json", result.predictions)
            reliability = reliability_bins(result, dataset)
            return {
                "label": label,
                "model": model,
                "data": data["resolved"],
                **select,
                **result.metrics,
                "reliability": reliability,
            }

        return self.stage(f"evaluate {label}", key, work)

    def run_questions(self, models: dict[str, tuple[str, str, int]]) -> list[dict[str, Any]] | None:
        from qatune.answering.factory import open_answerer

        questions = self.spec.questions
        if questions is None:
            return None
        pairs = [(q["context"], q["question"]) for q in questions.items]
        answers: dict[str, list[Any]] = {}
        for label, (model, model_key, seed) in models.items():
            key = digest(model_key, questions.items, questions.top_k)

            def work(model: str = model, seed: int = seed) -> list[list[dict[str, Any]]]:
                found = open_answerer(model, seed=seed)[0].ask_many(pairs, questions.top_k)
                return [[a.to_dict() for a in ranked] for ranked in found]

            answers[label] = self.stage(f"questions {label}", key, work)
        return [
            {
                "context": q["context"],
                "question": q["question"],
                "answers": {label: answers[label][i] for label in models},
            }
            for i, q in enumerate(questions.items)
        ]


def _untuned(model: str, seed: int) -> str:
    return digest("untuned", model, seed)


def run_study(spec: StudySpec, *, progress_bar: bool = True) -> dict[str, Any]:
    """Run (or resume) every stage of `spec`; write results.json and the report; return the results."""
    runner = StudyRunner(spec, progress_bar)
    with exclusive(runner.out, "this study"):
        return _run_stages(runner, spec)


def _evaluate_experiments(
    runner: StudyRunner, experiments: list[dict[str, Any]], test: dict[str, Any], test_slice: dict[str, Any]
) -> None:
    """Each experiment's scores on the test slice, and on a sample of its own training questions."""
    compare = runner.compare
    for result in experiments:
        config = TrainConfig.from_dict(result["config"])
        if compare.train_sample:
            own = runner.resolve(config.train_data, "train")
            result["train_eval"] = runner.run_eval(
                f"{result['name']} train",
                config.output_dir,
                result["key"],
                config,
                own,
                {"train_slice": True, "sample": compare.train_sample, "seed": compare.seed},
            )
        result["test_eval"] = runner.run_eval(
            f"{result['name']} test", config.output_dir, result["key"], config, test, test_slice
        )


def _comparison(
    runner: StudyRunner, experiments: list[dict[str, Any]], test: dict[str, Any], test_slice: dict[str, Any]
) -> dict[str, Any]:
    """The compared experiment against its untuned model, on the same test slice."""
    compare = runner.compare
    target = next(r for r in experiments if r["name"] == compare.experiment)
    config = TrainConfig.from_dict(target["config"])
    untuned = runner.run_eval(
        f"{config.model} untuned test", config.model, _untuned(config.model, config.seed), config, test, test_slice
    )
    return {
        "experiment": compare.experiment,
        "model": config.model,
        "untuned": untuned,
        "fine_tuned": target["test_eval"],
    }


def _question_models(experiments: list[dict[str, Any]]) -> dict[str, tuple[str, str, int]]:
    """The models that answer the study's questions: each experiment's, and each base model untuned."""
    models = {r["name"]: (r["config"]["output_dir"], r["key"], r["config"]["seed"]) for r in experiments}
    for r in experiments:
        base, seed = r["config"]["model"], r["config"]["seed"]
        models.setdefault(f"{base} (untuned)", (base, _untuned(base, seed), seed))
    return models


def _run_stages(runner: StudyRunner, spec: StudySpec) -> dict[str, Any]:
    from qatune.report import write_report

    began = time.perf_counter()
    runner.resolve(spec.data.train, "train")
    runner.resolve(spec.data.test, "validation")
    sweep = runner.run_sweep()
    experiments = [runner.run_experiment(e, sweep) for e in spec.experiments]
    compare = runner.compare
    test = runner.resolve(compare.data or spec.data.test, "validation")
    test_slice = {"limit": compare.limit, "sample": compare.sample, "seed": compare.seed}
    _evaluate_experiments(runner, experiments, test, test_slice)
    comparison = _comparison(runner, experiments, test, test_slice) if spec.compare else None
    questions = runner.run_questions(_question_models(experiments))
    results: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "study": spec.raw,
        "data": list(runner.data.values()),
        "sweep": sweep,
        "experiments": experiments,
        "compare": comparison,
        "test_slice": {"data": test["resolved"], **test_slice},
        "train_slice": compare.train_sample,
        "questions": questions,
        "stages": runner.timings,
        "versions": package_versions(("qatune", "torch", "transformers", "optuna", "tokenizers")),
        "seconds": round(time.perf_counter() - began, 1),
    }
    atomic_write_json(spec.report.dir / STUDY_RESULTS, results)
    results["files"] = [str(p) for p in write_report(results, spec.report)]
    return results

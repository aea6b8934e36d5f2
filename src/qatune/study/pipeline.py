"""The order of a study's stages: data -> sweep -> fine-tunes -> evaluations -> comparison -> questions ->
report, each run (or found in the cache) by `StudyRunner`."""

from __future__ import annotations

import time
from dataclasses import replace

from qatune.errors import ConfigError
from qatune.hardware import package_versions
from qatune.io import atomic_write_json
from qatune.layout import STUDY_RESULTS
from qatune.paths import exclusive
from qatune.report.results import Comparison, DataRef, ExperimentResult, Slice, StudyResults
from qatune.study.cache import StageCache, digest
from qatune.study.run import StudyRunner
from qatune.study.spec import StudySpec


def _untuned(runner: StudyRunner, model: str, seed: int) -> str:
    """The cache key of a model's untuned evaluations: its name, and a local folder's content."""
    sha = runner.model_sha(model)
    return digest("untuned", model, seed, *((sha,) if sha else ()))


def run_study(spec: StudySpec, *, progress_bar: bool = True) -> StudyResults:
    """Run (or resume) every stage of `spec`; write results.json and the report; return the results."""
    runner = StudyRunner(spec, progress_bar)
    with exclusive(runner.out, "this study"):
        runner.cache = StageCache(runner.out)  # read again under the lock: a run that held it may have added stages
        return _run_stages(runner, spec)


def _evaluate(runner: StudyRunner, result: ExperimentResult, test: DataRef, test_slice: Slice) -> ExperimentResult:
    """An experiment's scores on the test slice, on a sample of its own training questions, and on the
    same slice of each of compare.also_data."""
    compare, config = runner.compare, result.config
    train_eval = None
    if compare.train_sample:
        own = runner.resolve(config.train_data, "train")
        select = Slice(sample=compare.train_sample, seed=compare.seed, train_slice=True)
        train_eval = runner.run_eval(f"{result.name} train", config.output_dir, result.key, config, own, select)
    test_eval = runner.run_eval(f"{result.name} test", config.output_dir, result.key, config, test, test_slice)
    others = [
        runner.run_eval(f"{result.name} on {spec}", config.output_dir, result.key, config, data, test_slice)
        for spec, data in ((spec, runner.resolve(spec, "validation")) for spec in compare.also_data)
    ]
    return result.scored(train_eval, test_eval, others)


def _comparison(
    runner: StudyRunner, experiments: list[ExperimentResult], test: DataRef, test_slice: Slice
) -> Comparison:
    """The compared experiment against its untuned model, on the same test slice."""
    compare = runner.compare
    target = next(r for r in experiments if r.name == compare.experiment)
    config = target.config
    assert target.test_eval is not None  # every experiment was scored on the test slice
    base = next((r for r in experiments if r.config.output_dir == config.model), None)
    if base is not None and base.test_eval is not None:  # it starts from another experiment, scored already
        return Comparison(compare.experiment, base.name, base.test_eval, target.test_eval, "before fine-tuning further")
    key = _untuned(runner, config.model, config.seed)
    untuned = runner.run_eval(f"{config.model} untuned test", config.model, key, config, test, test_slice)
    return Comparison(compare.experiment, config.model, untuned, target.test_eval)


def _question_models(runner: StudyRunner, experiments: list[ExperimentResult]) -> dict[str, tuple[str, str, int]]:
    """The models that answer the study's questions: each experiment's, and each base model untuned (not
    those that are another experiment's model: it answers under its own name)."""
    models: dict[str, tuple[str, str, int]] = {}
    for r in experiments:  # a twin (the settings of an earlier experiment) is that model: asked once
        if all(key != r.key for _, key, _ in models.values()):
            models[r.name] = (r.config.output_dir, r.key, r.config.seed)
    trained = {r.config.output_dir for r in experiments}
    for r in experiments:
        base, seed = r.config.model, r.config.seed
        if base not in trained:
            models.setdefault(f"{base} (untuned)", (base, _untuned(runner, base, seed), seed))
    return models


def _check_also_data(runner: StudyRunner, test: DataRef) -> None:
    """Every compare.also_data set found, and none of them the test data or another of them under another
    name (`sample:dev` is `sample:validation`): it would be a column that repeats another."""
    seen = {test.sha256 or test.resolved: f"the test data ({test.spec})"}
    for spec in runner.compare.also_data:
        data = runner.resolve(spec, "validation")
        same = seen.setdefault(data.sha256 or data.resolved, spec)
        if same != spec:
            raise ConfigError(f"compare.also_data: {spec} is {same} already ({data.resolved}); list other data sets")


def _run_stages(runner: StudyRunner, spec: StudySpec) -> StudyResults:
    from qatune.report import write_report

    began = time.perf_counter()
    runner.resolve(spec.data.train, "train")
    runner.resolve(spec.data.test, "validation")
    for experiment in spec.experiments:  # every file found before the first stage spends minutes
        runner.resolve_mix(experiment.settings.get("mix"))
    test = runner.resolve(runner.compare.data or spec.data.test, "validation")
    _check_also_data(runner, test)
    sweep = runner.run_sweep()
    trained: list[ExperimentResult] = []
    for experiment in spec.experiments:
        trained.append(runner.run_experiment(experiment, sweep, {r.name: r for r in trained}))
    compare = runner.compare
    test_slice = Slice(compare.limit, compare.sample, compare.seed)
    scored: dict[str, ExperimentResult] = {}  # by model key: a twin is scored once, as its first
    experiments = [
        replace(scored[e.key], name=e.name, from_sweep=e.from_sweep)
        if e.key in scored
        else scored.setdefault(e.key, _evaluate(runner, e, test, test_slice))
        for e in trained
    ]
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
        questions=runner.run_questions(_question_models(runner, experiments)),
        stages=runner.timings,
        versions=package_versions(("qatune", "torch", "transformers", "optuna", "tokenizers")),
        seconds=round(time.perf_counter() - began, 1),
    )
    atomic_write_json(spec.report.dir / STUDY_RESULTS, results.to_dict())
    return replace(results, files=[str(p) for p in write_report(results, spec.report)])

"""What a study found, as typed records: each stage's result, `results.json`, and what the report shows.

They live here, before `study` in the pipeline, because the report reads them and the study (which
runs the stages and then writes the report) builds them.

Each record becomes JSON in one place (`to_dict`, the keys and order `results.json` always had) and is
read back in one place (`from_dict`, which takes what older qatune versions wrote: a stage cached by an
older run, or the results an old study folder holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from qatune.answering.decoding import Answer
from qatune.evaluation.analysis import ErrorAnalysis
from qatune.evaluation.metrics import Reliability
from qatune.evaluation.results import Scores
from qatune.io import JsonObject
from qatune.sweep.results import SweepReport
from qatune.training.config import TrainConfig
from qatune.training.summary import EvalRecord, saved_config


@dataclass(frozen=True)
class DataRef:
    """A data spec as the study resolved it: the file it names (and its sha256), or the hub spec."""

    spec: str
    split: str
    resolved: str
    sha256: str | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> JsonObject:
        head = {"spec": self.spec, "split": self.split, "resolved": self.resolved, "sha256": self.sha256}
        return {**head, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> DataRef:
        notes = tuple(saved.get("notes") or ())
        return cls(saved["spec"], saved.get("split", ""), saved["resolved"], saved.get("sha256"), notes)


@dataclass(frozen=True)
class Slice:
    """Which questions of a data file an evaluation scores: the first `limit`, a seeded `sample` of them,
    and with `train_slice` first the questions the experiment trained on."""

    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    train_slice: bool = False

    def to_dict(self) -> JsonObject:
        if self.train_slice:
            return {"train_slice": True, "sample": self.sample, "seed": self.seed}
        return {"limit": self.limit, "sample": self.sample, "seed": self.seed}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Slice:
        return cls(saved.get("limit"), saved.get("sample"), saved.get("seed", 0), bool(saved.get("train_slice")))


@dataclass(frozen=True)
class SliceEval:
    """One model scored on one slice of data (a row of the study's tables)."""

    label: str
    model: str
    data: str
    slice: Slice
    scores: Scores
    reliability: Reliability | None = None
    errors: ErrorAnalysis | None = None  # where it fails (absent in results from before it)

    def to_dict(self) -> JsonObject:
        head = {"label": self.label, "model": self.model, "data": self.data, **self.slice.to_dict()}
        out = {**head, **self.scores.to_dict(), "reliability": self.reliability}
        return out | ({"errors": self.errors.to_dict()} if self.errors else {})

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> SliceEval:
        scores, errors = Scores.from_dict(saved), saved.get("errors")
        return cls(
            saved["label"],
            saved["model"],
            saved["data"],
            Slice.from_dict(saved),
            scores,
            saved.get("reliability"),
            ErrorAnalysis.from_dict(errors) if errors else None,
        )


@dataclass(frozen=True)
class ExperimentResult:
    """One fine-tuning experiment: its settings, the run's summary figures, its history and its scores."""

    name: str
    key: str  # the hash of its inputs (the stage cache's key, also the key of the evaluations of its model)
    config: TrainConfig
    steps: int
    seconds: float | None
    final_eval: EvalRecord | None
    history: Sequence[EvalRecord]  # the eval lines of its metrics.jsonl
    from_sweep: Mapping[str, str]  # setting -> the sweep pick it came from
    train_eval: SliceEval | None = None
    test_eval: SliceEval | None = None
    other_evals: tuple[SliceEval, ...] = ()  # on compare.also_data, in its order

    def scored(
        self, train_eval: SliceEval | None, test_eval: SliceEval, other_evals: Sequence[SliceEval] = ()
    ) -> ExperimentResult:
        train_eval = train_eval or self.train_eval
        return replace(self, train_eval=train_eval, test_eval=test_eval, other_evals=tuple(other_evals))

    def to_dict(self) -> JsonObject:
        out = {
            "name": self.name,
            "key": self.key,
            "config": self.config.to_dict(),
            "steps": self.steps,
            "seconds": self.seconds,
            "final_eval": self.final_eval.to_dict() if self.final_eval else None,
            "history": [h.to_dict() for h in self.history],
            "from_sweep": dict(self.from_sweep),
        }
        evals = {"train_eval": self.train_eval, "test_eval": self.test_eval}
        out |= {k: v.to_dict() for k, v in evals.items() if v is not None}
        return out | ({"other_evals": [e.to_dict() for e in self.other_evals]} if self.other_evals else {})

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> ExperimentResult:
        """An experiment as saved; its settings are taken as they were, not checked again (data may have moved)."""
        train_eval, test_eval, final = saved.get("train_eval"), saved.get("test_eval"), saved.get("final_eval")
        return cls(
            saved["name"],
            saved["key"],
            saved_config(saved["config"]),
            saved.get("steps", 0),
            saved.get("seconds"),
            EvalRecord.from_dict(final) if final else None,
            [EvalRecord.from_dict(h) for h in saved.get("history") or ()],
            dict(saved.get("from_sweep") or {}),
            SliceEval.from_dict(train_eval) if train_eval else None,
            SliceEval.from_dict(test_eval) if test_eval else None,
            tuple(SliceEval.from_dict(e) for e in saved.get("other_evals") or ()),
        )


@dataclass(frozen=True)
class Comparison:
    """The compared experiment against its untuned base model, on the same test slice."""

    experiment: str
    model: str
    untuned: SliceEval
    fine_tuned: SliceEval
    before: str = "untuned"  # what the starting model is: another experiment's model is already fine-tuned

    @property
    def base_label(self) -> str:
        """The starting model as the report names it."""
        return f"{self.model} ({self.before})"

    def to_dict(self) -> JsonObject:
        head = {"experiment": self.experiment, "model": self.model}
        out = {**head, "untuned": self.untuned.to_dict(), "fine_tuned": self.fine_tuned.to_dict()}
        return out | ({"before": self.before} if self.before != "untuned" else {})

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Comparison:
        untuned, tuned = SliceEval.from_dict(saved["untuned"]), SliceEval.from_dict(saved["fine_tuned"])
        return cls(saved["experiment"], saved["model"], untuned, tuned, saved.get("before", "untuned"))


def answers_from_dict(saved: Sequence[Mapping[str, Any]]) -> list[Answer]:
    """Answers as `Answer.to_dict` wrote them."""
    keys = ("text", "probability", "start", "end", "score", "raw_probability")
    return [Answer(**{k: a[k] for k in keys if k in a}) for a in saved]


@dataclass(frozen=True)
class AskedQuestion:
    """One of the study's own questions and each model's top answers to it."""

    context: str
    question: str
    answers: Mapping[str, list[Answer]]  # model label -> its ranked answers

    def to_dict(self) -> JsonObject:
        answers = {label: [a.to_dict() for a in ranked] for label, ranked in self.answers.items()}
        return {"context": self.context, "question": self.question, "answers": answers}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> AskedQuestion:
        answers = {label: answers_from_dict(ranked) for label, ranked in saved["answers"].items()}
        return cls(saved["context"], saved["question"], answers)


@dataclass(frozen=True)
class StageTime:
    """How long a stage took when it ran, and whether this run reused its cached result."""

    seconds: float
    cached: bool

    def to_dict(self) -> JsonObject:
        return {"seconds": self.seconds, "cached": self.cached}


@dataclass(frozen=True)
class StudyResults:
    """Everything the study's report shows (`results.json`)."""

    name: str
    description: str | None
    study: JsonObject  # the study file as the user wrote it (the report's "reproduce" section)
    data: list[DataRef]
    sweep: SweepReport | None
    experiments: list[ExperimentResult]
    compare: Comparison | None
    test_slice: tuple[str, Slice]  # the data file tested on, and the slice of it
    train_slice: int | None  # questions of each experiment's own training data scored
    questions: list[AskedQuestion] | None
    stages: Mapping[str, StageTime]
    versions: Mapping[str, str]
    seconds: float
    files: list[str] = field(default_factory=list)  # the report files written from it

    def models(self) -> list[ExperimentResult]:
        """One experiment per model: a twin (an earlier experiment's settings, so its model) is left out."""
        first: dict[str, ExperimentResult] = {}
        for e in self.experiments:
            first.setdefault(e.config.output_dir, e)
        return list(first.values())

    def to_dict(self) -> JsonObject:
        head = {"name": self.name, "description": self.description, "study": self.study}
        body = {
            "data": [d.to_dict() for d in self.data],
            "sweep": self.sweep.to_dict() if self.sweep else None,
            "experiments": [e.to_dict() for e in self.experiments],
            "compare": self.compare.to_dict() if self.compare else None,
            "test_slice": {"data": self.test_slice[0], **self.test_slice[1].to_dict()},
            "train_slice": self.train_slice,
            "questions": None if self.questions is None else [q.to_dict() for q in self.questions],
        }
        stages = {name: t.to_dict() for name, t in self.stages.items()}
        tail = {"stages": stages, "versions": dict(self.versions), "seconds": self.seconds}
        return {**head, **body, **tail} | ({"files": self.files} if self.files else {})

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> StudyResults:
        """The results in a `results.json` object (any version qatune wrote)."""
        sweep, compare, questions = saved.get("sweep"), saved.get("compare"), saved.get("questions")
        test = saved.get("test_slice") or {}
        return cls(
            saved["name"],
            saved.get("description"),
            dict(saved.get("study") or {}),
            [DataRef.from_dict(d) for d in saved.get("data") or ()],
            SweepReport.from_dict(sweep) if sweep else None,
            [ExperimentResult.from_dict(e) for e in saved["experiments"]],
            Comparison.from_dict(compare) if compare else None,
            (test.get("data", ""), Slice.from_dict(test)),
            saved.get("train_slice"),
            None if questions is None else [AskedQuestion.from_dict(q) for q in questions],
            {name: StageTime(t["seconds"], t["cached"]) for name, t in (saved.get("stages") or {}).items()},
            dict(saved.get("versions") or {}),
            saved.get("seconds", 0.0),
            list(saved.get("files") or ()),
        )

"""The study file: one YAML that describes the whole experiment, validated before anything runs.

Sections: `data` (train/test specs), `sweep` (a W&B sweep, optional), `experiments` (named
fine-tunes; a setting may come `from_sweep` as one of the sweep's picks), `compare` (an
experiment against its untuned base model on test data), `questions` (asked to every model) and
`report` (folder, formats). Every error names its section and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qatune.data.sources import check_spec
from qatune.errors import ConfigError, DataError
from qatune.io import JsonObject, read_json
from qatune.paths import safe_name
from qatune.sweep.params import NOT_TUNABLE
from qatune.sweep.results import PICKS
from qatune.sweep.spec import SweepSpec, load_sweep, parse_sweep
from qatune.training.config import SEED_MAX, Settings, SettingValue, TrainConfig, typed
from qatune.training.trackers import parse_report_to
from qatune.yamlfile import load_yaml

_STUDY_WIDE = {  # NOT_TUNABLE's settings, and where a study sets them
    "output_dir": "each experiment gets its own folder",
    "data_dir": "set data.dir once for the whole study",
    "report_to": "set report_to once, at the top of the study file",
}
KEYS = ("name", "description", "data", "sweep", "experiments", "compare", "questions", "report", "report_to")
DATA_KEYS = ("train", "test", "dir", "allow_sample")
COMPARE_KEYS = ("experiment", "data", "also_data", "limit", "sample", "train_sample", "seed")
QUESTION_KEYS = ("top_k", "file", "items")
REPORT_KEYS = ("dir", "formats", "title")
FORMATS = ("markdown", "html")
SWEEP_EXTRAS = ("file", "count")  # qatune's keys beside a W&B sweep config
PICK_NAMES = (*PICKS, "best")  # "best": the best trial by the sweep's own metric


@dataclass
class DataSpec:
    train: str = "squad:train"
    test: str = "squad:validation"
    dir: str | None = None
    allow_sample: bool = False


@dataclass
class Experiment:
    name: str
    settings: Settings
    from_sweep: dict[str, str] = field(default_factory=dict)
    from_experiment: str | None = None  # `model: {from_experiment: NAME}`: fine-tune that experiment's model further


@dataclass
class Compare:
    experiment: str
    data: str | None = None
    limit: int | None = None
    sample: int | None = 1000
    train_sample: int | None = 500
    seed: int = 0
    also_data: tuple[str, ...] = ()  # every experiment is also scored on these (e.g. SQuAD dev beside one's own)


@dataclass
class Questions:
    top_k: int
    items: list[dict[str, str]]


@dataclass
class ReportSpec:
    dir: Path
    formats: tuple[str, ...] = FORMATS
    title: str | None = None


@dataclass
class StudySpec:
    name: str
    description: str
    data: DataSpec
    sweep: SweepSpec | None
    sweep_count: int | None
    experiments: list[Experiment]
    compare: Compare | None
    questions: Questions | None
    report: ReportSpec
    raw: JsonObject  # the study file as written
    report_to: str = "none"  # trackers of the sweep's trials and the experiments (qatune.training.trackers)


def _mapping(raw: Any, where: str, keys: tuple[str, ...], cls: type | None = None) -> JsonObject:
    """A section's mapping as written: unknown keys refused, and with `cls` each value checked against its
    field's type."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - set(keys), key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid: {', '.join(keys)}")
    return {key: typed(key, value, cls, f"{where}.") for key, value in raw.items()} if cls else raw


def _positive(value: Any, where: str, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _sweep(raw: Any, base_dir: Path) -> tuple[SweepSpec | None, int | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep: expected a W&B sweep config (mapping), got {raw!r}")
    count = _positive(raw.get("count"), "sweep.count")
    config = {k: v for k, v in raw.items() if k not in SWEEP_EXTRAS}
    try:
        if "file" in raw:
            path = _relative(raw["file"], base_dir, "file")
            spec = load_sweep(path, config.pop("base", None))
            if config:
                raise ConfigError(f"with `file`, only `base` and `count` may sit beside it, not {', '.join(config)}")
        else:
            spec = parse_sweep(config)
    except ConfigError as exc:
        raise ConfigError(f"sweep: {exc}") from None
    if count is None and spec.run_cap is None and spec.grid_size is None:
        raise ConfigError("sweep: give `run_cap` (or `count`) so the study knows when the sweep is done")
    return spec, count


def _relative(path: Any, base_dir: Path, where: str) -> Path:
    """A path from the study file: relative to the file's folder if it exists there, else to the cwd."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where}: expected a file path, got {path!r}")
    candidate = base_dir / path
    return candidate if candidate.exists() else Path(path)


def _experiment(raw: Any, i: int, data: DataSpec, sweep: SweepSpec | None, earlier: list[str]) -> Experiment:
    where = f"experiments[{i}]"
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"{where}: expected a mapping with a `name` and training settings")
    safe_name(raw["name"], f"{where}.name")
    where = f"experiments.{raw['name']}"
    settings: Settings = {}
    picks: dict[str, str] = {}
    base = None
    for key, value in raw.items():
        if key == "name":
            continue
        if key in NOT_TUNABLE:
            raise ConfigError(f"{where}.{key}: set by the study ({_STUDY_WIDE[key]})")
        if key == "model" and isinstance(value, dict) and set(value) == {"from_experiment"}:
            base = _earlier(value["from_experiment"], f"{where}.model.from_experiment", earlier)
        elif isinstance(value, dict):
            if set(value) != {"from_sweep"}:
                raise ConfigError(f"{where}.{key}: a mapping here must be {{from_sweep: PICK}}, got {value!r}")
            picks[key] = _pick(value["from_sweep"], f"{where}.{key}", key, sweep)
        else:
            settings[key] = value
    settings.setdefault("train_data", data.train)
    settings.setdefault("eval_data", data.test)
    probe = {**settings, **({k: _example_value(sweep, k) for k in picks} if sweep else {})}
    try:
        TrainConfig.from_dict({**probe, "output_dir": "check"})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return Experiment(raw["name"], settings, picks, base)


def _earlier(name: Any, where: str, earlier: list[str]) -> str:
    """The experiment a `from_experiment` names: one listed before it, whose model it starts from."""
    if name not in earlier:
        listed = ", ".join(earlier) or "none"
        raise ConfigError(f"{where}: {name!r} is not an experiment listed before this one (listed before: {listed})")
    return str(name)


def _pick(pick: Any, where: str, key: str, sweep: SweepSpec | None) -> str:
    if sweep is None:
        raise ConfigError(f"{where}: from_sweep needs a `sweep` section")
    if pick not in PICK_NAMES:
        raise ConfigError(f"{where}.from_sweep: unknown pick {pick!r}; valid: {', '.join(PICK_NAMES)}")
    if key not in sweep.params and key not in sweep.fixed:
        raise ConfigError(f"{where}: the sweep does not search {key!r} (it searches {', '.join(sweep.params)})")
    return str(pick)


def _example_value(sweep: SweepSpec, key: str) -> SettingValue:
    """Some value the sweep can pick for `key`, to check the rest of an experiment's settings."""
    draw = {k: p.grid[0] if p.grid else p.bounds[0] for k, p in sweep.params.items()}
    return sweep.values(draw)[key]


def _specs(raw: Any, where: str) -> tuple[str, ...]:
    """A list of data specs (a single one may be written without the list)."""
    specs = [raw] if isinstance(raw, str) else raw
    if not isinstance(specs, list) or not all(isinstance(s, str) and s.strip() for s in specs):
        raise ConfigError(f"{where}: expected a list of data specs (files or squad:validation), got {raw!r}")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"{where}: a data spec is listed twice: {specs}")
    return tuple(specs)


def _questions(raw: Any, base_dir: Path) -> Questions | None:
    if raw is None:
        return None
    body = _mapping(raw, "questions", QUESTION_KEYS)
    top_k = body.get("top_k", 3)
    if not isinstance(top_k, int) or not 1 <= top_k <= 20:
        raise ConfigError(f"questions.top_k: expected 1..20, got {top_k!r}")
    if ("file" in body) == ("items" in body):
        raise ConfigError("questions: give `file` (a JSON list of {context, question}) or `items`, one of them")
    items = body.get("items")
    if "file" in body:
        path = _relative(body["file"], base_dir, "questions.file")
        try:
            items = read_json(path, "questions file")
        except ConfigError as exc:
            raise ConfigError(f"questions.file: {exc}") from None
    if not isinstance(items, list) or not items:
        raise ConfigError("questions: expected a non-empty list of {context, question}")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) and item[k].strip() for k in ("context", "question")
        ):
            raise ConfigError(f"questions[{i}]: expected {{context: TEXT, question: TEXT}}, got {item!r}")
        if not isinstance(item.get("title", ""), str):
            raise ConfigError(
                f"questions[{i}]: title must be text (the context's document's name), got {item['title']!r}"
            )
    keys = ("context", "question", "title")  # a title only where given: the cache keys of earlier studies stay
    return Questions(top_k, [{k: q[k] for k in keys if k in q} for q in items])


def _report(raw: Any, name: str) -> ReportSpec:
    body = _mapping(raw, "report", REPORT_KEYS)
    formats = body.get("formats", list(FORMATS))
    if isinstance(formats, str):
        formats = [formats]
    bad = [f for f in formats if not isinstance(f, str) or f not in FORMATS] if isinstance(formats, list) else [formats]
    if bad or not formats:
        raise ConfigError(f"report.formats: expected some of {', '.join(FORMATS)}, got {formats!r}")
    for key in ("dir", "title"):
        if key in body and not (isinstance(body[key], str) and body[key].strip()):
            raise ConfigError(f"report.{key}: expected a non-empty string, got {body[key]!r}")
    return ReportSpec(Path(body.get("dir", f"runs/studies/{name}")), tuple(formats), body.get("title"))


def parse_study(raw: Any, base_dir: Path = Path(".")) -> StudySpec:
    """Validate a whole study; `base_dir` is where relative `file:` paths are looked up first."""
    if not isinstance(raw, dict):
        raise ConfigError("a study file is a mapping with data, experiments, ... sections")
    body = _mapping(raw, "study", KEYS)
    name = safe_name(body.get("name", "study"), "name")
    data = DataSpec(**_mapping(body.get("data"), "data", DATA_KEYS, DataSpec))
    if data.dir is not None and (not data.dir.strip() or not Path(data.dir).is_dir()):
        raise ConfigError(f"data.dir: {data.dir!r} is not a folder; give the folder with the SQuAD files")
    sweep, count = _sweep(body.get("sweep"), base_dir)
    experiments_raw = body.get("experiments")
    if not isinstance(experiments_raw, list) or not experiments_raw:
        raise ConfigError("experiments: expected a list of {name, model, learning_rate, ...}")
    experiments: list[Experiment] = []
    for i, e in enumerate(experiments_raw):
        experiments.append(_experiment(e, i, data, sweep, [x.name for x in experiments]))
    names = [e.name for e in experiments]
    if len({n.casefold() for n in names}) != len(names):  # each names a folder: `a` and `A` are one on macOS
        raise ConfigError(f"experiments: names must be unique, ignoring case, got {names}")
    compare = None
    if body.get("compare") is not None:
        raw_compare = _mapping(body["compare"], "compare", COMPARE_KEYS)
        also = _specs(raw_compare.get("also_data", []), "compare.also_data")
        values = _mapping({k: v for k, v in raw_compare.items() if k != "also_data"}, "compare", COMPARE_KEYS, Compare)
        compare = Compare(**values, also_data=also)
        tested = values.get("data") or data.test
        if tested in also:
            raise ConfigError(f"compare.also_data: {tested} is the test data already; list other data sets")
        for i, spec in enumerate((compare.data, *also)):
            try:
                if spec is not None:
                    check_spec(spec, "validation")
            except DataError as exc:
                raise ConfigError(f"compare.{'data' if i == 0 else 'also_data'}: {exc}") from None
        if compare.experiment not in names:
            raise ConfigError(
                f"compare.experiment: {compare.experiment!r} is not an experiment; valid: {', '.join(names)}"
            )
        for key in ("limit", "sample", "train_sample"):
            _positive(getattr(compare, key), f"compare.{key}")
        if isinstance(compare.seed, bool) or not isinstance(compare.seed, int) or not 0 <= compare.seed <= SEED_MAX:
            raise ConfigError(f"compare.seed: must be an integer between 0 and {SEED_MAX}, got {compare.seed!r}")
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"description: expected text, got {description!r}")
    report_to = ",".join(parse_report_to(body.get("report_to"))) or "none"
    return StudySpec(
        name,
        description,
        data,
        sweep,
        count,
        experiments,
        compare,
        _questions(body.get("questions"), base_dir),
        _report(body.get("report"), name),
        raw,
        report_to,
    )


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study YAML file."""
    path = Path(path)
    raw = load_yaml(path, "study")
    try:
        return parse_study(raw, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None

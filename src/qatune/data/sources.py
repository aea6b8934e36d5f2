"""Find data by name: an explicit path, then ``QATUNE_DATA_DIR``, then the HF hub or its cache, then the sample.

A data spec is a file path, ``sample[:SPLIT]`` (the embedded set, splits train and validation), or
``NAME[:SPLIT]`` with NAME one of ``squad``/``squad_v2`` (searched locally first) or any Hugging Face dataset id.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from qatune.data.squad import QADataset, hf_rows, load_file, validate_rows
from qatune.errors import DataError

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "QATUNE_DATA_DIR"
SAMPLE = "sample"

# File names looked for in QATUNE_DATA_DIR, best first (complete official file, then rebuilt, then partial).
LOCAL_FILES: dict[tuple[str, str], list[str]] = {
    ("squad", "train"): [
        "train-v1.1.json",
        "train-v1.1.json.gz",
        "train-v1.1-rebuilt.json.gz",
        "train-v1.1-partial.json.gz",
    ],
    ("squad", "validation"): ["dev-v1.1.json", "dev-v1.1.json.gz"],
    ("squad_v2", "train"): ["train-v2.0.json", "train-v2.0.json.gz"],
    ("squad_v2", "validation"): ["dev-v2.0.json", "dev-v2.0.json.gz"],
}
HUB_IDS = {"squad": "rajpurkar/squad", "squad_v2": "rajpurkar/squad_v2"}
SPLIT_ALIASES = {"dev": "validation", "val": "validation", "test": "validation"}


@functools.cache
def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """One quick connection attempt, so offline machines skip the hub clients' long retry loops."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_unless_reachable() -> Iterator[None]:
    """Put the hub clients in offline (cache-only) mode while the hub is unreachable.

    They read HF_HUB_OFFLINE once at import, and otherwise retry for ~25 s before failing,
    so the flags are set on their config modules for the duration of the call.
    """
    import datasets.config
    import huggingface_hub.constants

    modules = [datasets.config, huggingface_hub.constants]
    saved = [m.HF_HUB_OFFLINE for m in modules]
    offline = not hub_reachable()
    for module, value in zip(modules, saved):
        module.HF_HUB_OFFLINE = value or offline
    try:
        yield
    finally:
        for module, value in zip(modules, saved):
            module.HF_HUB_OFFLINE = value


def sample_path(split: str = "train") -> Path:
    """The embedded sample set (original paragraphs written for qatune, SQuAD v1.1 format)."""
    name = "sample-dev.json" if split == "validation" else "sample-train.json"
    return Path(str(resources.files("qatune") / "resources" / name))


def load_sample(split: str = "train") -> QADataset:
    return load_file(sample_path(split))


def check_spec(spec: str, default_split: str = "train") -> None:
    """Refuse a data spec that cannot name data (empty, or a split squad/sample do not have), without
    reading anything: what a dry run can know."""
    _split_spec(spec, default_split)


def _split_spec(spec: str, default_split: str) -> tuple[str, str]:
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"empty data spec {spec!r}: give a file, sample, or squad[:split]")
    name, _, split = spec.partition(":")
    split = SPLIT_ALIASES.get(split or default_split, split or default_split)
    if (name == SAMPLE or name in HUB_IDS) and split not in ("train", "validation"):
        # else `sample:validaton` (a typo) would quietly evaluate on the training sample
        raise DataError(
            f"{spec}: unknown split {split!r}; {name} has train and validation "
            f"({', '.join(SPLIT_ALIASES)} mean validation)"
        )
    return name, split


def _local_file(name: str, split: str, data_dir: str | None) -> Path | None:
    folder = data_dir or os.environ.get(DATA_DIR_ENV)
    if not folder:
        return None
    if not Path(folder).is_dir():  # a typo here must not quietly become the embedded sample set
        setting = "data_dir" if data_dir else DATA_DIR_ENV
        raise DataError(
            f"{name}:{split}: not found: {setting}={folder} is not a folder; set {DATA_DIR_ENV} to the folder "
            f"with the SQuAD files"
        )
    for filename in LOCAL_FILES.get((name, split), []):
        candidate = Path(folder) / filename
        if candidate.is_file():
            return candidate
    return None


def _load_hub(name: str, split: str, skip_invalid: bool) -> QADataset:
    """Load a Hugging Face dataset (needs the hub or a filled local cache)."""
    import datasets  # imported late: heavy, and only this path needs it

    repo = HUB_IDS.get(name, name)
    try:
        with _offline_unless_reachable():
            rows = datasets.load_dataset(repo, split=split)
    except Exception as exc:  # the hub client raises many unrelated types; all mean "not available"
        raise DataError(f"{repo}[{split}]: not available from the Hugging Face hub or its cache ({exc})") from None
    source = f"hf:{repo}[{split}]"
    return validate_rows(hf_rows(repo, split, rows), source)


def _not_a_file(spec: str, name: str) -> None:
    """Refuse a spec that names a folder, or a file path that does not exist (hub ids look like paths)."""
    path = Path(spec)
    if path.is_dir() and name not in HUB_IDS:  # `squad` stays the data spec even beside a folder named squad
        raise DataError(f"{spec}: is a folder; give a data file (.json, .json.gz or .jsonl) or a data spec")
    if path.suffix in {".json", ".jsonl", ".gz"} or spec.startswith((".", os.sep, "~")):
        raise DataError(f"{spec}: file not found")


def load_data(
    spec: str,
    default_split: str = "train",
    *,
    data_dir: str | None = None,
    skip_invalid: bool = False,
    allow_sample: bool = True,
) -> QADataset:
    """Resolve a data spec (see module doc) and load it; announce a fall-back to the sample."""
    name, split = _split_spec(spec, default_split)
    if name == SAMPLE:
        return load_sample(split)
    path = Path(spec)
    if path.is_file():
        return load_file(path, skip_invalid)
    _not_a_file(spec, name)
    local = _local_file(name, split, data_dir)
    if local is not None:
        logger.info("using %s for %s[%s]", local, name, split)
        return load_file(local, skip_invalid)
    looked = f"{DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV) or data_dir or '(unset)'}"
    try:
        return _load_hub(name, split, skip_invalid)
    except DataError as exc:
        if not allow_sample or name not in HUB_IDS:
            raise DataError(
                f"{spec}: not found (looked in {looked}, then the HF hub: {exc}); "
                f"pass a file path or set {DATA_DIR_ENV} to a folder with the SQuAD files"
            ) from None
    dataset = load_sample(split)
    note = (
        f"{spec}: SQuAD not found ({looked}; HF hub unreachable): using the embedded sample set "
        f"({len(dataset)} questions) instead. Set {DATA_DIR_ENV} to use real SQuAD."
    )
    dataset.notes.append(note)
    logger.warning(note)
    return dataset


def locate(
    spec: str, default_split: str = "train", *, data_dir: str | None = None, allow_sample: bool = True
) -> tuple[str, list[str]]:
    """Resolve `spec` once, up front, to what later stages should load: a file path, or the hub spec.

    Local files are found without being read; a hub dataset is loaded (into its cache) to prove it is
    there. Returns (concrete spec, notes); the notes announce a fall-back to the embedded sample.
    """
    name, split = _split_spec(spec, default_split)
    if name == SAMPLE:
        return str(sample_path(split)), []
    if Path(spec).is_file():
        return spec, []
    _not_a_file(spec, name)
    local = _local_file(name, split, data_dir) if name in HUB_IDS else None
    if local is not None:
        return str(local), []
    dataset = load_data(spec, default_split, data_dir=data_dir, allow_sample=allow_sample)
    if dataset.notes:
        return str(sample_path(split)), dataset.notes
    return spec, []

"""Which study stages are done: each finished stage is recorded with the hash of its inputs.

A rerun skips a stage whose inputs (its settings, the data files' hashes, the model it reads)
hash to the recorded key, and redoes it otherwise. Stages that stop half-way (fine-tuning, the
sweep) resume by themselves; the record is written only when a stage has finished.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypedDict

from qatune.errors import ConfigError
from qatune.io import JsonObject, atomic_write_json, read_json
from qatune.layout import STAGES_FILE

FILE = STAGES_FILE


def digest(*parts: Any) -> str:
    """A stable short hash of JSON-able values."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FileRecord(TypedDict):
    """What `file_hash` remembers of a data file (in stages.json): its size and mtime when it was hashed."""

    size: int
    mtime: float
    sha256: str


def file_hash(path: Path, memo: dict[str, FileRecord]) -> str:
    """sha256 of a file, remembered by (size, mtime) so a rerun need not read big files again."""
    stat = path.stat()
    entry = memo.get(str(path))
    if entry and entry.get("size") == stat.st_size and entry.get("mtime") == stat.st_mtime and entry.get("sha256"):
        return str(entry["sha256"])
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    memo[str(path)] = {"size": stat.st_size, "mtime": stat.st_mtime, "sha256": sha.hexdigest()}
    return sha.hexdigest()


@dataclass(frozen=True)
class StageRecord:
    """A finished stage: the hash of its inputs, how long it took, when it finished, and its result as JSON."""

    key: str
    seconds: float
    finished: str
    result: Any  # the JSON the stage's work returned (each stage reads it back into its records)


class StageCache:
    """The `stages.json` of a study folder: stage -> {key, seconds, finished, result}."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE
        self.state: JsonObject = read_json(self.path, "study stages file") if self.path.exists() else {}
        if not isinstance(self.state, dict):
            self._damaged("not a JSON object")
        self.state.setdefault("stages", {})
        self.state.setdefault("files", {})
        stages, files = self.state["stages"], self.state["files"]
        if not isinstance(stages, dict) or not all(isinstance(r, dict) and "key" in r for r in stages.values()):
            self._damaged("'stages' is not a map of stage records")
        if not isinstance(files, dict) or not all(isinstance(f, dict) for f in files.values()):
            self._damaged("'files' is not a map of file records")

    def _damaged(self, why: str) -> None:
        raise ConfigError(
            f"{self.path}: not a qatune stages file ({why}); delete it to rerun every stage "
            f"(stopped fine-tunes and sweeps still resume)"
        )

    @property
    def files(self) -> dict[str, FileRecord]:
        """path -> {size, mtime, sha256} of the data files hashed so far (`file_hash`'s memo)."""
        files: dict[str, FileRecord] = self.state["files"]
        return files

    def get(self, stage: str, key: str) -> StageRecord | None:
        """The record of `stage` if it finished with these inputs, else None."""
        saved = self.state["stages"].get(stage)
        if not saved or saved["key"] != key:
            return None
        return StageRecord(key, saved.get("seconds", 0.0), saved.get("finished", ""), saved.get("result"))

    def put(self, stage: str, key: str, seconds: float, result: Any = None) -> StageRecord:
        record = StageRecord(key, round(seconds, 1), time.strftime("%Y-%m-%dT%H:%M:%S"), result)
        self.state["stages"][stage] = asdict(record)
        self.save()
        return record

    def save(self) -> None:
        atomic_write_json(self.path, self.state)

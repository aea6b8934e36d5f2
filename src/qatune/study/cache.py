"""Which study stages are done: each finished stage is recorded with the hash of its inputs.

A rerun skips a stage whose inputs (its settings, the data files' hashes, the model it reads)
hash to the recorded key, and redoes it otherwise. Stages that stop half-way (fine-tuning, the
sweep) resume by themselves; the record is written only when a stage has finished.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from qatune.errors import ConfigError
from qatune.io import atomic_write_json, read_json
from qatune.layout import STAGES_FILE

FILE = STAGES_FILE


def digest(*parts: Any) -> str:
    """A stable short hash of JSON-able values."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path: Path, memo: dict[str, Any]) -> str:
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


class StageCache:
    """The `stages.json` of a study folder: stage -> {key, seconds, finished, result}."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE
        self.state: dict[str, Any] = read_json(self.path, "study stages file") if self.path.exists() else {}
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
    def files(self) -> dict[str, Any]:
        files: dict[str, Any] = self.state["files"]
        return files

    def get(self, stage: str, key: str) -> dict[str, Any] | None:
        """The record of `stage` if it finished with these inputs, else None."""
        record = self.state["stages"].get(stage)
        return record if record and record["key"] == key else None

    def put(self, stage: str, key: str, seconds: float, result: Any = None) -> dict[str, Any]:
        record = {
            "key": key,
            "seconds": round(seconds, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "result": result,
        }
        self.state["stages"][stage] = record
        self.save()
        return record

    def save(self) -> None:
        atomic_write_json(self.path, self.state)

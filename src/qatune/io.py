"""Small file helpers: atomic writes (temp file + rename) and JSON Lines history files."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qatune.errors import ConfigError, OutputError, QatuneError

JsonObject = dict[str, Any]
"""A JSON object as it crosses a file or wire edge: what a record's `to_dict` gives and `from_dict` takes, what
a reader returns before it is checked. Inside the package values travel as typed records; this alias
marks the edges (tests/test_architecture.py allows it only in the functions it lists)."""


def normal_mode(path: str | Path) -> None:
    """Give a file or folder made by `tempfile` (0600 / 0700) the mode a plain `open`/`mkdir` would have
    given it under the process's umask, so a model folder is readable by a server running as another
    user exactly when the user's other files are."""
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` so that readers see the old file or the whole new one, never half of it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write it ({exc.strerror or exc}); choose a writable folder") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        normal_mode(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write it ({exc.strerror or exc})") from None
        raise


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinity as None (null): Python writes them as bare NaN, which is not JSON,
    so browsers, jq and other languages could not read the file."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(value) for value in obj]
    return obj


def dumps(obj: Any, **options: Any) -> str:
    """Strict JSON text of `obj` (non-finite numbers as null): every JSON qatune writes or prints."""
    return json.dumps(finite(obj), allow_nan=False, **options)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[JsonObject]:
    """The JSON-object records of a JSON Lines file; a torn last line (from a kill mid-write), or any
    other line that is not a JSON object, is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, object]]) -> None:
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in records))


def append_jsonl(path: str | Path, record: Mapping[str, object]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(dumps(record) + "\n")
        handle.flush()


def parse_json(text: str, where: str, error: type[QatuneError] = ConfigError) -> Any:
    """JSON from `text`; malformed or absurdly nested JSON is one `error` naming `where`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply to read") from None


def read_json(path: str | Path, what: str, error: type[QatuneError] = ConfigError) -> Any:
    """A JSON file qatune reads (its own run files, user lists); every failure is one `error` naming it."""
    return parse_json(read_text_file(path, what, error), str(path), error)


def read_text_file(path: str | Path, what: str, error: type[QatuneError] = ConfigError) -> str:
    """A UTF-8 text file's contents; missing, a folder, unreadable or undecodable is one `error` naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read this {what} ({type(exc).__name__}: {exc})") from None


def _yaml_loader() -> type:
    """PyYAML's safe loader, stricter and friendlier for config files.

    - a key given twice in one mapping is an error (PyYAML silently keeps the last one);
    - `1e-4` is a float, as in JSON and YAML 1.2 (YAML 1.1 wants `1.0e-4` and reads `1e-4` as a string).
    """
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    mark = key_node.start_mark
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (each key may appear once in a mapping)", mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep)

    float_re = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_re, list("-+0123456789."))
    return Loader


def yaml_value(text: str, where: str) -> Any:
    """One value written in YAML (`--base lr=1e-4`), read by the same rules as config files."""
    return _parse_yaml(text, where)


def _parse_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        place = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise ConfigError(f"{place}: {problem}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{where}: not readable YAML/JSON ({type(exc).__name__})") from None


def load_yaml(path: str | Path, kind: str) -> Any:
    """Parse a YAML (or JSON) file; a missing, unreadable or malformed file is one ConfigError naming
    the file, and for syntax errors the line and column."""
    return _parse_yaml(read_text_file(path, f"{kind} file"), str(path))

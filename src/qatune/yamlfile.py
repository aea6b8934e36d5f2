"""YAML (and JSON) settings files qatune reads, study and sweep specs: stricter than PyYAML's defaults,
and every problem one ConfigError naming the file, line and column."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qatune.errors import ConfigError
from qatune.io import read_text_file


def _yaml_loader() -> type:
    """PyYAML's safe loader, stricter and friendlier for config files.

    - a key given twice in one mapping is an error (PyYAML silently keeps the last one);
    - `1e-4` is a float, as in JSON and YAML 1.2 (YAML 1.1 wants `1.0e-4` and reads `1e-4` as a string).
    """
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

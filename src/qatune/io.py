"""Small file helpers: where a write goes, atomic writes (temp file + rename), strict JSON, JSON Lines
(YAML files: `qatune.yamlfile`)."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from qatune.errors import ConfigError, OutputError, QatuneError
from qatune.layout import temp_prefix

JsonObject = dict[str, Any]
"""A JSON object as it crosses a file or wire edge: what a record's `to_dict` gives and `from_dict` takes, what
a reader returns before it is checked. Inside the package values travel as typed records; this alias
marks the edges (tests/test_architecture.py allows it only in the functions it lists)."""


# A path that names one of this process's open descriptors: the stream itself, not the file it leads to.
_DESCRIPTOR = re.compile(r"/dev/(?:std(?P<std>in|out|err)|fd/(?P<fd>\d+))|/proc/(?P<pid>self|\d+)/fd/(?P<pfd>\d+)")
_SPECIAL = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISBLK, "a block device"))


@dataclass(frozen=True)
class OutputTarget:
    """Where writing a path goes, by qatune's one rule for every file it writes (`output_target`).

    `kind` is "file" (`path` is a regular file's real path, or a new one: written whole, temp + rename),
    "stdout" (`-`), "fd" (one of this process's descriptors, such as /dev/stdout) or "device" (a character
    device such as /dev/null); the last three are streams, written straight to."""

    path: Path
    kind: str = "file"
    fd: int = -1

    @property
    def stream(self) -> bool:
        return self.kind != "file"


def _descriptor(path: str) -> int | None:
    """The descriptor `path` names, itself or through symlinks (a link to /dev/stdout), if it names one."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's limit on links followed
        match = _DESCRIPTOR.fullmatch(current)
        if match is not None and match["pid"] in (None, "self", str(os.getpid())):
            return ("in", "out", "err").index(match["std"]) if match["std"] else int(match["fd"] or match["pfd"])
        if match is not None or not os.path.islink(current):
            return None
        current = os.path.abspath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return None


def _dangling_link(path: str) -> Path | None:
    """The symlink on the way to `path` (itself or a folder above it) that leads nowhere, if any."""
    absolute = Path(os.path.abspath(path))
    return next((p for p in (absolute, *absolute.parents) if os.path.lexists(p) and not os.path.exists(p)), None)


def output_target(path: str | Path, flag: str | None = None, error: type[QatuneError] = OutputError) -> OutputTarget:
    """Where a write of `path` goes; anything qatune must not write is one `error` naming `flag` and the path.

    A regular file (or a new name) is written through any symlink to its real path, the link kept; `-`, a
    descriptor of this process (/dev/stdout, /dev/fd/N) and a character device are streams; a folder, a
    name ending in '/', a dangling symlink and any other special file (FIFO, socket, block device) are refused.
    """
    text = os.fspath(path)
    where = f"{flag} {text}" if flag else text
    if text == "-":
        return OutputTarget(Path(text), "stdout", 1)
    if not text:
        raise error(f"{flag or 'the output path'} is empty; give a file name")
    if text.endswith(("/", os.sep)):
        raise error(f"{where}: ends in '/', so it names a folder; give a file name")
    descriptor = _descriptor(text)
    if descriptor is not None:
        try:
            os.fstat(descriptor)
        except OSError:
            raise error(f"{where}: descriptor {descriptor} is not open in this process; give a file name") from None
        return OutputTarget(Path(text), "fd", descriptor)
    real = Path(os.path.realpath(text))
    try:
        info = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):  # a new file (a folder above that is a file: said on writing)
        link = _dangling_link(text)
        if link is not None:
            which = "is a symlink" if link == Path(os.path.abspath(text)) else f"is inside {link}, a symlink"
            raise error(f"{where}: {which} to {os.readlink(link)}, which does not exist; give a file name") from None
        return OutputTarget(real)
    except OSError as exc:
        raise error(f"{where}: cannot write it ({exc.strerror or exc}); give another path") from None
    if stat.S_ISREG(info.st_mode):
        return OutputTarget(real)
    if stat.S_ISCHR(info.st_mode):
        return OutputTarget(real, "device")
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{where}: is a folder; give a file name")
    kind = next((name for test, name in _SPECIAL if test(info.st_mode)), "a special file")
    raise error(
        f"{where}: is {kind}, not a regular file; qatune writes a regular file, '-' (standard output) or a "
        f"character device such as /dev/null"
    )


def normal_mode(path: str | Path) -> None:
    """Give a file or folder made by `tempfile` (0600 / 0700) the mode a plain `open`/`mkdir` would have
    given it under the process's umask, so a model folder is readable by a server running as another
    user exactly when the user's other files are."""
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


def new_temp_file(target: Path) -> tuple[int, Path]:
    """A new temporary file beside `target`, named as qatune's own for it (`layout.temp_prefix`)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target.name))
    return fd, Path(tmp)


def _write_stream(target: OutputTarget, chunks: Iterable[bytes]) -> None:
    """Write straight to a stream: standard output, one of this process's descriptors, or a device."""
    for python_stream in (sys.stdout, sys.stderr):  # what Python buffered goes first
        with contextlib.suppress(Exception):
            python_stream.flush()
    if target.kind == "stdout" and not hasattr(sys.stdout, "buffer"):  # replaced by a text stream
        sys.stdout.write(b"".join(chunks).decode("utf-8", "replace"))
        return
    if target.kind == "stdout":
        handle: BinaryIO = sys.stdout.buffer
    elif target.kind == "fd":
        handle = os.fdopen(os.dup(target.fd), "wb")
    else:
        handle = open(target.path, "wb")  # a device: opened, never created; closed below
    try:
        for chunk in chunks:
            handle.write(chunk)
        handle.flush()
    finally:
        if target.kind != "stdout":
            handle.close()


def _replace_with(target: OutputTarget, write: Callable[[Path], object]) -> None:
    """Put the file `write` makes (given a temporary path beside the target) at a "file" target, whole."""
    real = target.path
    real.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temp_file(real)
    os.close(fd)
    try:
        mode = stat.S_IMODE(os.stat(real).st_mode) if real.exists() else None
        write(tmp)
        os.chmod(tmp, mode) if mode is not None else normal_mode(tmp)  # a replaced file keeps its mode
        os.replace(tmp, real)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cannot_write(path: str | Path, exc: OSError) -> OutputError:
    return OutputError(f"{os.fspath(path)}: cannot write it ({exc.strerror or exc}); choose a writable place")


def _written(path: str | Path, stream: Callable[[OutputTarget], None], write: Callable[[Path], object]) -> None:
    target = output_target(path)
    try:
        stream(target) if target.stream else _replace_with(target, write)
    except OSError as exc:
        raise _cannot_write(path, exc) from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` by the rule of `output_target`: a file so that readers see the old file or
    the whole new one, never half of it (its symlink, if any, kept); a stream straight."""
    _written(path, lambda target: _write_stream(target, [data]), lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_file(src: Path, path: str | Path) -> None:
    """Move the finished file `src` to `path` by the same rule (a copy where `path` leads elsewhere)."""

    def chunks() -> Iterator[bytes]:
        with open(src, "rb") as handle:
            yield from iter(lambda: handle.read(1 << 20), b"")

    def move(tmp: Path) -> None:
        try:
            os.replace(src, tmp)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # only a link to another file system needs a copy
                raise
            shutil.copyfile(src, tmp)

    _written(path, lambda target: _write_stream(target, chunks()), move)
    src.unlink(missing_ok=True)


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
    """Add one line to a JSON Lines file (by the rule of `output_target`: through a symlink, or to a stream)."""
    line = (dumps(record) + "\n").encode("utf-8")
    target = output_target(path)
    try:
        if target.stream:
            _write_stream(target, [line])
            return
        with open(target.path, "ab") as handle:
            handle.write(line)
    except OSError as exc:
        raise _cannot_write(path, exc) from None


class _Refused(ValueError):
    pass


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise _Refused(f"{key}: given twice (each key may appear once)")
        found[key] = value
    return found


def _no_constant(name: str) -> None:
    raise _Refused(f"{name} is not a JSON number")


def parse_json(text: str, where: str, error: type[QatuneError] = ConfigError, strict: bool = False) -> Any:
    """JSON from `text`; malformed or absurdly nested JSON is one `error` naming `where`. `strict` (every
    settings file) also refuses a key given twice (json keeps the last) and NaN/Infinity (not JSON)."""
    try:
        if strict:
            return json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)
        return json.loads(text)
    except _Refused as exc:
        raise error(f"{where}: damaged ({exc})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{where}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply to read") from None
    except ValueError as exc:  # a number of over 4,300 digits
        raise error(f"{where}: damaged ({exc})") from None


def read_json(path: str | Path, what: str, error: type[QatuneError] = ConfigError) -> Any:
    """A JSON file qatune reads (its own run and settings files, user lists), strictly (`parse_json`);
    every failure is one `error` naming it."""
    return parse_json(read_text_file(path, what, error), str(path), error, strict=True)


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

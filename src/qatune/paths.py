"""Where qatune may write: safe names, the one rule for output folders and files, owned cleanups.

Every path a user names may already hold their work. qatune writes into a folder only when it is
missing, empty, or marked as qatune's own output of the same kind (the marker file that kind always
writes, such as `qatune.json` beside a trained model); anything else is refused unless the user
passes --overwrite. A cleanup removes only a folder that carries qatune's marker and lies inside
the folder qatune owns. Names that become folder names are validated as safe slugs first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from qatune.errors import ConfigError
from qatune.layout import LOCK_FILE

logger = logging.getLogger(__name__)

# Letters, digits, space, '.', '_' and '-'; starting with a letter or digit: no separators, no '..',
# nothing absolute, nothing hidden. Spaces are allowed because study names such as "Roberta 1" are.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,98}[A-Za-z0-9_-])?")


def safe_name(value: object, where: str) -> str:
    """`value` if it is safe to use as one folder name; else a ConfigError naming `where`."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ConfigError(
            f"{where}: {value!r} is not a valid name: it becomes a folder name, so use letters, "
            f"digits, spaces, '.', '_' or '-' (no '/', no '..', at most 100 characters, starting and "
            f"ending with a letter or digit)"
        )
    return value


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable_parent(path: Path, flag: str) -> None:
    """The nearest existing ancestor of `path` must be a folder this process can write into."""
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise ConfigError(f"{flag} {path}: {anchor} is a file, not a folder; choose another path")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: cannot write into {anchor} (permission denied); choose another path")


def check_output_file(path: str | Path, flag: str, overwrite: bool = False) -> Path:
    """Check before any work that `path` can be written: not a folder, its folder writable, and no
    existing file replaced unless `overwrite` (the user's --overwrite)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ConfigError(f"{flag} {path}: the file exists; choose another name or pass --overwrite to replace it")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {path}: cannot write this file (permission denied)")
    _check_writable_parent(path, flag)
    return path


def make_folder(folder: Path, flag: str) -> Path:
    """Create `folder` (checked with check_output_folder first); a failure is one error naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{flag} {folder}: cannot create the folder ({exc.strerror or exc}); choose another path"
        ) from None
    return folder


def _holds_anything(folder: Path) -> bool:
    """Whether `folder` holds anything but the lock file of a qatune process that was killed."""
    return any(p.name != LOCK_FILE for p in folder.iterdir())


@contextlib.contextmanager
def exclusive(folder: Path, what: str) -> Iterator[None]:
    """Hold `folder` (which exists) while this process writes `what` into it: the same command started
    twice would otherwise resume one run's checkpoint while the other still writes, and mix their files.

    An OS file lock (filelock: the OS releases it when a process dies, so a killed run never leaves a
    stale lock); on a file system without locks, such as some network mounts, nothing is held.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(folder / LOCK_FILE, timeout=0, fallback_to_soft=False)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"{folder}: another qatune process is writing {what} there now; wait for it to finish (or stop it) "
            f"and run the command again"
        ) from None
    except (OSError, NotImplementedError) as exc:
        logger.debug("%s: not locked (%s)", folder, exc)
        yield
        return
    try:
        yield
        # Done: the finished folder keeps no lock file. Removed while still held, so a process that opened
        # it before can only find the work finished; an interrupted run keeps it (harmless, ignored).
        (folder / LOCK_FILE).unlink(missing_ok=True)
    finally:
        lock.release()


def first_missing(folder: Path) -> Path | None:
    """The outermost folder of `folder`'s path that does not exist yet (what making it would create)."""
    missing = None
    for candidate in [folder.absolute(), *folder.absolute().parents]:
        if candidate.exists():
            break
        missing = candidate
    return missing


@contextlib.contextmanager
def removed_if_new(folder: Path, created: Path | None) -> Iterator[None]:
    """Remove `folder`, and the parents made with it up to `created` (`first_missing` before making it),
    when the block fails while they hold nothing but the lock: a run refused for its data or model
    leaves no empty folders behind."""
    try:
        yield
    except BaseException:
        if created is not None:
            (folder / LOCK_FILE).unlink(missing_ok=True)
            current = folder.absolute()
            with contextlib.suppress(OSError):  # one not empty: it and those above it are kept
                while True:
                    current.rmdir()
                    if current == created or current.parent == current:
                        break
                    current = current.parent
        raise


def is_owned(folder: Path, markers: tuple[str, ...]) -> bool:
    """Whether `folder` holds one of the marker files qatune writes into output of this kind."""
    return any((folder / marker).exists() for marker in markers)


def check_output_folder(
    folder: str | Path, flag: str, markers: tuple[str, ...], kind: str, overwrite: bool | None = None
) -> Path:
    """Check before any work that qatune may write `folder` (see module doc). Creates nothing.

    `overwrite` is the user's --overwrite; None where the command has no such flag.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{flag} {folder}: is a file, not a folder; choose another path")
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {folder}: cannot write into this folder (permission denied)")
        if not overwrite and _holds_anything(folder) and not is_owned(folder, markers):
            raise ConfigError(
                f"{flag} {folder}: the folder is not empty and is not {kind}; qatune will not write "
                f"into it. Choose a new or empty folder"
                + (", or pass --overwrite to replace its contents" if overwrite is not None else "")
            )
    else:
        _check_writable_parent(folder, flag)
    return folder


def remove_owned(folder: Path, owner: Path, markers: tuple[str, ...]) -> None:
    """Delete `folder` only if it lies inside `owner` and carries one of qatune's `markers`.

    Anything else is refused with a ConfigError: a cleanup never removes what qatune did not write.
    """
    inside = folder.resolve().is_relative_to(owner.resolve()) and folder.resolve() != owner.resolve()
    if not inside:
        raise ConfigError(f"{folder}: refusing to remove a folder outside {owner}")
    if not folder.exists():
        return
    if folder.is_dir() and not _holds_anything(folder):
        shutil.rmtree(folder)  # at most a lock file left by a killed process
        return
    if not folder.is_dir() or not is_owned(folder, markers):
        raise ConfigError(
            f"{folder}: holds files qatune did not write; move them away (qatune only replaces folders it made)"
        )
    shutil.rmtree(folder)

"""Where qatune may write: safe names, the one rule for output folders and files, owned cleanups.

Every path a user names may already hold their work. qatune writes into a folder only when it is
missing, empty, or marked as qatune's own output of the same kind (the marker file that kind always
writes, such as `qatune.json` beside a trained model); anything else is refused unless the user
passes --overwrite. A cleanup removes only a folder that carries qatune's marker and lies inside
the folder qatune owns. Names that become folder names are validated as safe slugs first.

A file qatune writes follows one rule (`io.output_target`): written through a symlink to the regular file
it leads to (the link stays a link), straight to `-` or a character device, and never to a folder, a
dangling link or another special file. Temporaries are named by `layout.temp_prefix`; a run removes its
own leftovers from the folders it owns (`remove_leftovers`), and only those.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

from qatune.errors import ConfigError, OutputError
from qatune.io import normal_mode, output_target
from qatune.layout import LOCK_FILE, is_temp_name, temp_prefix

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
    """Check before any work that `path` can be written by the rule of `io.output_target` (a regular file,
    through its symlink; a stream; nothing else), its folder writable, and no existing file replaced unless
    `overwrite` (the user's --overwrite). Returns the file that will be written (a stream: `path` itself)."""
    target = output_target(path, flag, ConfigError)
    shown = f"{flag} {os.fspath(path)}"
    if target.stream:  # written straight to, nothing replaced: no --overwrite needed
        if target.kind == "device" and not os.access(target.path, os.W_OK):
            raise ConfigError(f"{shown}: cannot write this device (permission denied)")
        return Path(path)
    real = target.path
    if real.exists() and not overwrite:
        raise ConfigError(f"{shown}: the file exists; choose another name or pass --overwrite to replace it")
    if real.exists() and not os.access(real, os.W_OK):
        raise ConfigError(f"{shown}: cannot write this file (permission denied)")
    _check_writable_parent(real, flag)
    return real


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
        with _holding(folder):
            yield
        return
    try:
        with _holding(folder):
            yield
        # Done: the finished folder keeps no lock file. Removed while still held, so a process that opened
        # it before can only find the work finished; an interrupted run keeps it (harmless, ignored).
        (folder / LOCK_FILE).unlink(missing_ok=True)
    finally:
        lock.release()


_HELD: set[Path] = set()  # the folders this process holds (`exclusive`)


@contextlib.contextmanager
def _holding(folder: Path) -> Iterator[None]:
    key = folder.resolve()
    _HELD.add(key)
    try:
        yield
    finally:
        _HELD.discard(key)


def holds(folder: Path) -> bool:
    """Whether this process holds `folder` (inside `exclusive`), so no other qatune process writes there."""
    return folder.resolve() in _HELD


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
    if folder.is_symlink() and not folder.exists():
        raise ConfigError(
            f"{flag} {folder}: is a symlink to {os.readlink(folder)}, which does not exist; give a folder"
        )
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


def _in_use(folder: Path) -> bool:
    """Whether a live process holds the temporary `folder` (`temp_folder` keeps a lock file in it)."""
    from filelock import FileLock, Timeout

    if not (folder / LOCK_FILE).exists():
        return False
    try:
        with FileLock(folder / LOCK_FILE, timeout=0, fallback_to_soft=False):
            return False
    except Timeout:
        return True
    except (OSError, NotImplementedError):  # no locks on this file system: as `exclusive`, nothing is held
        return False


def remove_leftovers(folder: Path, target: str | None = None, legacy: tuple[str, ...] = ()) -> list[Path]:
    """Remove from `folder` the temporaries qatune processes left when they were killed: names that
    `layout.is_temp_name` recognises (for `target` only, when given) or that match a `legacy` pattern,
    plain files and folders only (never a symlink), a folder only when no live process holds it."""
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no such folder yet: nothing left
        return []
    removed = []
    for entry in entries:
        if not is_temp_name(entry.name, target) and not any(fnmatch(entry.name, p) for p in legacy):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False) and not _in_use(path):
            shutil.rmtree(path, ignore_errors=True)
        elif entry.is_file(follow_symlinks=False):
            path.unlink(missing_ok=True)
        else:
            continue
        logger.info("removed %s, left by a qatune process that was stopped", path)
        removed.append(path)
    return removed


@contextlib.contextmanager
def temp_folder(target: Path) -> Iterator[Path]:
    """A new folder beside `target`, named as qatune's temporary for it and held (a lock file inside, so a
    concurrent `remove_leftovers` leaves it alone) while the block writes it; removed afterwards, whatever
    the block did not move away."""
    from filelock import FileLock

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=temp_prefix(target.name)))
        normal_mode(tmp)  # it may become a folder the user reads
    except OSError as exc:
        raise OutputError(f"{target}: cannot write there ({exc.strerror or exc}); choose a writable folder") from None
    lock = FileLock(tmp / LOCK_FILE, timeout=0, fallback_to_soft=False)
    with contextlib.suppress(OSError, NotImplementedError):
        lock.acquire()
    try:
        yield tmp
    finally:
        lock.release()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Write the folder `target` whole: the block fills a temporary folder, which then takes `target`'s place
    (an existing `target` is moved aside first and removed once the new one is in; a symlink to a folder
    stays a link and its folder is replaced). A failure leaves `target` as it was and no temporary."""
    target = Path(os.path.realpath(target))
    with temp_folder(target) as new:
        yield new
        try:
            _put_in_place(new, target)
        except OSError as exc:
            raise OutputError(f"{target}: cannot write it ({exc.strerror or exc}); choose a writable folder") from None
        (target / LOCK_FILE).unlink(missing_ok=True)  # came with the folder: the finished one holds no lock


def _put_in_place(new: Path, target: Path) -> None:
    if not target.exists():
        new.rename(target)
        return
    with temp_folder(target) as old:
        target.rename(old / target.name)
        try:
            new.rename(target)
        except OSError:
            (old / target.name).rename(target)
            raise


def masked_url(url: str) -> str:
    """`url` with any password (user:password@ or ?password=) replaced by ***, so it can be printed, logged
    and saved."""
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show its scheme only
        return url.split("://", 1)[0] + "://..." if "://" in url else "(unparsable database URL)"
    return re.sub(r"(?i)((?:^|[?&])[a-z]*password=)[^&]*", r"\1***", shown)  # libpq also takes ?password=

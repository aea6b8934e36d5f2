"""qatune.paths: names that become folders, and the rule that qatune never removes what it did not write."""

from __future__ import annotations

import pytest

from qatune.errors import ConfigError
from qatune.paths import check_output_file, check_output_folder, remove_owned, safe_name


@pytest.mark.parametrize("name", ["quickstart", "Roberta 1", "minilm-best_f1.v2", "a"])
def test_safe_names(name):
    assert safe_name(name, "name") == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/abs/path",
        "../../x",
        "..",
        ".",
        ".hidden",
        "a/b",
        "a\\b",
        "x..y",
        " padded",
        "trailing ",
        "x" * 101,
        7,
        None,
        "tab\tname",
        "new\nline",
    ],
)
def test_unsafe_names(name):
    with pytest.raises(ConfigError, match="not a valid name"):
        safe_name(name, "experiments[0].name")


def test_remove_owned_only_removes_marked_folders_inside(tmp_path):
    owner = tmp_path / "study"
    mine = owner / "experiments" / "a"
    mine.mkdir(parents=True)
    (mine / ".stage-key").write_text("k")
    remove_owned(mine, owner, (".stage-key",))
    assert not mine.exists()
    theirs = owner / "experiments" / "b"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError, match="did not write"):
        remove_owned(theirs, owner, (".stage-key",))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / ".stage-key").write_text("k")
    for target in (outside, owner / ".." / "elsewhere", owner):
        with pytest.raises(ConfigError, match="outside"):
            remove_owned(target, owner, (".stage-key",))
    assert (theirs / "notes.txt").exists() and outside.exists()


def test_output_checks(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_folder(tmp_path / "f", "--output", ("m",), "a run")
    with pytest.raises(ConfigError, match="not empty"):
        check_output_folder(tmp_path / "d", "--output", ("m",), "a run")
    assert check_output_folder(tmp_path / "d", "--output", ("m",), "a run", overwrite=True)
    (tmp_path / "d" / "m").write_text("")
    assert check_output_folder(tmp_path / "d", "--output", ("m",), "a run")  # an earlier run of this kind
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_file(tmp_path / "f" / "p.json", "--predictions")
    with pytest.raises(ConfigError, match="exists"):
        check_output_file(tmp_path / "f", "--predictions")
    assert check_output_file(tmp_path / "f", "--predictions", overwrite=True)
    assert not (tmp_path / "new").exists() and check_output_folder(tmp_path / "new" / "x", "--output", ("m",), "a run")
    assert not (tmp_path / "new").exists()  # checks create nothing


def test_a_folder_is_held_by_one_process_and_a_killed_ones_lock_is_no_content(tmp_path):
    from qatune.layout import LOCK_FILE
    from qatune.paths import exclusive

    with exclusive(tmp_path, "a run"):
        with pytest.raises(ConfigError, match="another qatune process is writing a run"):
            with exclusive(tmp_path, "a run"):
                pass
    assert not (tmp_path / LOCK_FILE).exists()  # finished: no lock file left
    with pytest.raises(RuntimeError):
        with exclusive(tmp_path, "a run"):
            raise RuntimeError  # interrupted: the (released) lock file stays
    assert (tmp_path / LOCK_FILE).exists()
    with exclusive(tmp_path, "a run"):  # released by the OS with its process: never stale
        pass
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / LOCK_FILE).write_text("")
    assert check_output_folder(killed, "--output", ("m",), "a run")  # empty but for the lock file
    remove_owned(killed, tmp_path, ("m",))
    assert not killed.exists()

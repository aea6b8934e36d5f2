"""`qatune push` never uploads a file from outside the model folder: a model file that links out is refused with
one `error:` line naming it, before any network; links inside the folder are fine; linked folders, broken links
and special files stay behind. Checked on the file list, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import qatune.publishing.push as push_module
from qatune.cli.main import main
from qatune.errors import ConfigError
from qatune.publishing.push import push_files


@pytest.fixture
def folder(tmp_path) -> Path:
    """A model folder as check_push accepts it (config.json and weights), without a real model."""
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        (model / name).write_text("{}")
    return model


@pytest.fixture
def secret(tmp_path) -> Path:
    key = tmp_path / "home" / ".ssh" / "id_rsa"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    return key


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The Hub is never asked: a link out of the folder must be refused before the network."""

    def unreachable() -> bool:
        raise AssertionError("the network was reached before the file list was checked")

    monkeypatch.setattr(push_module, "hub_reachable", unreachable)


def test_a_model_file_linked_out_of_the_folder_is_refused(folder, secret):
    (folder / "vocab.txt").symlink_to(secret)
    with pytest.raises(ConfigError, match=r"vocab\.txt: a link to .*id_rsa, outside the folder"):
        push_files(folder)


def test_a_linked_subfolder_file_and_a_relative_escape_are_refused(folder, secret, tmp_path):
    (folder / "tensorboard").mkdir()
    (folder / "tensorboard" / "events.out.tfevents.1").symlink_to(secret)
    with pytest.raises(ConfigError, match="events.out.tfevents.1: a link to"):
        push_files(folder)
    (folder / "tensorboard" / "events.out.tfevents.1").unlink()
    sibling = tmp_path / "other" / "merges.txt"
    sibling.parent.mkdir()
    sibling.write_text("x")
    (folder / "merges.txt").symlink_to(os.path.relpath(sibling, folder))
    with pytest.raises(ConfigError, match="merges.txt: a link to"):
        push_files(folder)


def test_the_cli_gives_one_error_line(folder, secret, capsys):
    (folder / "vocab.txt").symlink_to(secret)
    assert main(["push", str(folder), "--repo-id", "me/tiny"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "vocab.txt" in err[0] and "outside the folder" in err[0]


def test_links_inside_the_folder_go_up_and_others_stay(folder, secret, tmp_path):
    (folder / "weights").mkdir()
    (folder / "weights" / "real.bin").write_text("w")
    (folder / "vocab.txt").write_text("[PAD]\n")
    (folder / "added_tokens.json").symlink_to("config.json")  # inside: its content goes up under its name
    (folder / "notes.txt").symlink_to(secret)  # not a model file: never on the list
    (folder / "merges.txt").symlink_to(folder / "missing")  # broken: nothing to upload
    (folder / "tensorboard").symlink_to(secret.parent, target_is_directory=True)  # a folder: not entered
    os.mkfifo(folder / "vocab.json")  # a special file: reading it would block the upload
    sent, kept = push_files(folder)
    assert sent == ["README.md", "added_tokens.json", "config.json", "model.safetensors", "tokenizer.json", "vocab.txt"]
    assert {"notes.txt", "merges.txt", "tensorboard/", "vocab.json", "weights/real.bin"} <= set(kept)
    assert not any("id_rsa" in name for name in sent + kept)


def test_the_folder_itself_may_be_a_link(folder, tmp_path):
    link = tmp_path / "latest"
    link.symlink_to(folder, target_is_directory=True)
    (folder / "vocab.txt").symlink_to(folder / "config.json")
    sent, _ = push_files(link)
    assert "vocab.txt" in sent and "config.json" in sent

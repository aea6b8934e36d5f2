"""Third-party logging goes through qatune's own: stderr holds only `error:`/`warning:` lines (and progress)
unless `-v` asks for the rest; everything the command changed in logging is put back when it ends.

A stand-in command emits what real libraries emit during qatune commands: huggingface_hub's "Repo card
metadata block was not found" (through its own stream handler), onnxruntime's `logging.warning` on the
root logger ("WARNING:root:Please consider to run pre-processing before quantization"), and a Python warning.
"""

from __future__ import annotations

import logging
import sys
import warnings

import pytest

from qatune.cli import main as cli
from qatune.cli.settings import command_settings

PREPROCESS = "Please consider to run pre-processing before quantization. Refer to example: ..."


def _third_party_chatter() -> None:
    from huggingface_hub import RepoCard

    RepoCard("a model card without a metadata block")  # huggingface_hub.repocard: "Repo card metadata block ..."
    logging.warning(PREPROCESS)  # as onnxruntime.quantization does: the root logger, basicConfig's format
    logging.getLogger("some.library").info("loaded 3 plugins")
    warnings.warn("`foo` is deprecated", FutureWarning, stacklevel=1)
    logging.getLogger("qatune.cli").warning("qatune's own warning")
    logging.getLogger("qatune.cli").info("qatune's own line")


@pytest.fixture
def cli_process(monkeypatch):
    """The logging of a fresh `qatune` process: huggingface_hub's stream handler writing to this test's
    stderr, as it sets it up; the test calls it with no handler on the root logger (pytest adds its own
    when the test's call begins, so each test takes them off first)."""
    import huggingface_hub  # noqa: F401  (its logger configured as on import)

    hub = logging.getLogger("huggingface_hub")
    monkeypatch.setattr(hub, "handlers", [logging.StreamHandler(sys.stderr)])
    monkeypatch.setattr(hub, "propagate", True)
    level = hub.level
    hub.setLevel(logging.WARNING)

    def command(args) -> int:
        _third_party_chatter()
        return 0

    monkeypatch.setitem(cli.COMMANDS, "data", command)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        yield lambda: monkeypatch.setattr(logging.root, "handlers", [])
    hub.setLevel(level)


HUB = logging.getLogger("huggingface_hub")


def test_third_party_lines_are_quiet_by_default(cli_process, capsys):
    cli_process()  # no handler on the root logger, as in a fresh process
    qatune = logging.getLogger("qatune")
    before = (qatune.handlers[:], qatune.level, qatune.propagate, HUB.handlers[:], logging.root.handlers[:])
    assert cli.main(["data", "x.json"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == ["warning: qatune's own warning", "qatune's own line"], err
    after = (qatune.handlers[:], qatune.level, qatune.propagate, HUB.handlers[:], logging.root.handlers[:])
    assert after == before  # no handler left on the root (basicConfig never ran), huggingface_hub's own back


def test_quiet_keeps_only_warnings(cli_process, capsys):
    cli_process()  # no handler on the root logger, as in a fresh process
    assert cli.main(["data", "x.json", "-q"]) == 0
    assert capsys.readouterr().err == "warning: qatune's own warning\n"


def test_verbose_shows_them_through_qatune(cli_process, capsys):
    cli_process()  # no handler on the root logger, as in a fresh process
    assert cli.main(["-v", "data", "x.json"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert (
        "warning: huggingface_hub.repocard: Repo card metadata block was not found. Setting CardData to empty." in err
    )
    assert f"warning: {PREPROCESS}" in err and "WARNING:root:" not in "\n".join(err)
    assert any(line.startswith("warning: py.warnings: ") and "FutureWarning" in line for line in err)
    assert "warning: qatune's own warning" in err and "qatune's own line" in err


def test_quiet_and_verbose_together_is_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["-q", "data", "x.json", "-v"])
    assert stopped.value.code == 2 and capsys.readouterr().err.startswith("error: -q (fewer lines) and -v")


def test_the_settings_scope_takes_root_records_and_puts_everything_back(cli_process, capsys):
    cli_process()  # no handler on the root logger, as in a fresh process
    qatune, showwarning = logging.getLogger("qatune"), warnings.showwarning
    before = (qatune.handlers[:], qatune.level, qatune.propagate, HUB.handlers[:], HUB.level)
    with command_settings(1):
        _third_party_chatter()
        assert qatune.propagate is False
    assert capsys.readouterr().err.splitlines() == ["warning: qatune's own warning", "qatune's own line"]
    assert logging.root.handlers == [] and warnings.showwarning is showwarning
    assert (qatune.handlers[:], qatune.level, qatune.propagate, HUB.handlers[:], HUB.level) == before

"""The one rule for every file qatune writes (`qatune.io.output_target`, issue 25 item 1).

A regular file is written through a symlink to its real path (the link stays a link); `-`, a descriptor of
this process (/dev/stdout) and a character device (/dev/null) are streams, written straight to; a folder,
a name ending in '/', a dangling symlink and any other special file (FIFO, socket) are refused.

The system's own /dev/stdout and /dev/null are reached through links made here: a test must be able to
fail without the rule, and without it a write replaces the path it is given, which must not be /dev's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
from pathlib import Path

import pytest

import qatune.io
from qatune.cli.main import main
from qatune.errors import ConfigError, OutputError
from qatune.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from qatune.paths import check_output_file, check_output_folder


@pytest.fixture
def no_hang():
    """Fail instead of blocking forever (opening a FIFO for writing waits for a reader)."""

    def timeout(signum, frame):
        raise TimeoutError("blocked on a write")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_symlink_to_a_file_stays_a_link_and_its_target_is_replaced(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "scores.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(Path("real") / "scores.json")  # relative, as users make them
    with pytest.raises(ConfigError, match="--metrics .*link.json: the file exists"):
        check_output_file(link, "--metrics")
    atomic_write_json(link, {"f1": 1.0})
    assert link.is_symlink() and os.readlink(link) == str(Path("real") / "scores.json")
    assert json.loads(target.read_text()) == {"f1": 1.0}
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # a replaced file keeps its mode
    assert check_output_file(link, "--metrics", overwrite=True) == target.resolve()
    append_jsonl(link, {"step": 1})
    assert link.is_symlink() and read_jsonl(target)[-1] == {"step": 1}
    moved = tmp_path / "moved"
    moved.write_text("weights")
    qatune.io.replace_file(moved, link)  # how a finished model's files go into the run folder
    assert link.is_symlink() and target.read_text() == "weights" and not moved.exists()
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["scores.json"]  # no temporaries left


def test_a_link_to_dev_null_is_a_stream(tmp_path):
    link = tmp_path / "discard"
    link.symlink_to("/dev/null")
    atomic_write_json(link, {"a": 1})
    append_jsonl(link, {"a": 1})
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["discard"]
    assert check_output_file("/dev/null", "--predictions") == Path("/dev/null")  # nothing replaced: no --overwrite
    assert qatune.io.output_target(link).kind == "device"


def test_dev_stdout_and_dash_are_streams(tmp_path, capfd):
    link = tmp_path / "out"
    link.symlink_to("/dev/stdout")
    atomic_write_json(link, {"to": "fd 1"})
    assert json.loads(capfd.readouterr().out) == {"to": "fd 1"}
    assert link.is_symlink() and os.readlink(link) == "/dev/stdout"
    atomic_write_text("-", "to sys.stdout\n")
    assert capfd.readouterr().out == "to sys.stdout\n"
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    assert check_output_file("/dev/stdout", "--predictions") == Path("/dev/stdout")
    assert qatune.io.output_target("/dev/stdout").kind == "fd" and qatune.io.output_target(link).fd == 1


def test_a_descriptor_of_this_process_is_written_straight(tmp_path):
    read, write = os.pipe()
    try:
        atomic_write_text(f"/proc/self/fd/{write}", "through the pipe")
        assert os.read(read, 100) == b"through the pipe"
    finally:
        os.close(read)
        os.close(write)
    with pytest.raises(ConfigError, match="descriptor 987 is not open"):
        check_output_file("/dev/fd/987", "--predictions")


@pytest.mark.parametrize("via_link", [False, True])
def test_a_fifo_is_refused_without_blocking(tmp_path, no_hang, via_link):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    path = tmp_path / "link" if via_link else fifo
    if via_link:
        path.symlink_to(fifo)
    with pytest.raises(ConfigError, match=r"--predictions .*: is a named pipe \(FIFO\), not a regular file"):
        check_output_file(path, "--predictions", overwrite=True)
    for write in (lambda: atomic_write_json(path, {}), lambda: append_jsonl(path, {})):
        with pytest.raises(OutputError, match="named pipe"):
            write()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(ConfigError, match="is a socket"):
            check_output_file(path, "--metrics", overwrite=True)


def test_a_dangling_link_is_refused_and_left_as_it_is(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "gone" / "x.json")
    with pytest.raises(ConfigError, match="--predictions .*link.json: is a symlink to .*gone/x.json, which does not"):
        check_output_file(link, "--predictions", overwrite=True)
    with pytest.raises(OutputError, match="which does not exist"):
        atomic_write_json(link, {})
    (tmp_path / "dir-link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="is inside .*dir-link, a symlink"):
        check_output_file(tmp_path / "dir-link" / "p.json", "--predictions")
    with pytest.raises(ConfigError, match="--output .*: is a symlink to .*nowhere, which does not exist"):
        check_output_folder(tmp_path / "dir-link", "--output", ("m",), "a run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir-link", "link.json"]
    assert link.is_symlink() and not (tmp_path / "gone").exists() and not (tmp_path / "nowhere").exists()


def test_a_trailing_slash_or_a_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--predictions .*newdir/: ends in '/'"):
        check_output_file(f"{tmp_path}/newdir/", "--predictions")
    with pytest.raises(OutputError, match="ends in '/'"):
        atomic_write_json(f"{tmp_path}/newdir/", {})
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="is a folder; give a file name"):
        check_output_file(tmp_path / "folder", "--metrics", overwrite=True)
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_json(tmp_path / "folder", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"] and not any((tmp_path / "folder").iterdir())


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith("error:")]


def test_the_cli_writes_through_links_and_refuses_the_rest(tmp_path, capsys, no_hang):
    target = tmp_path / "mine.json"
    target.write_text("{}")
    link = tmp_path / "data.json"
    link.symlink_to(target)
    assert _run(["data", "sample", "--output", str(link), "--overwrite", "-q"], capsys) == (0, [])
    assert link.is_symlink() and json.loads(target.read_text())["version"] == "1.1"  # no negatives: v1.1
    os.mkfifo(tmp_path / "fifo")
    for output, words in ((f"{tmp_path}/newdir/", "ends in '/'"), (str(tmp_path / "fifo"), "named pipe")):
        code, errors = _run(["data", "sample", "--output", output, "--overwrite", "-q"], capsys)
        assert code == 2 and len(errors) == 1 and words in errors[0] and "--output" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "fifo", "mine.json"]


def test_an_export_through_a_link_replaces_the_folder_it_leads_to(tiny_bert, tmp_path):
    from qatune.answering.onnx_backend import OnnxAnswerer
    from qatune.data.windows import WindowConfig
    from qatune.layout import ONNX_META
    from qatune.publishing.export import export_onnx

    real = tmp_path / "exports" / "v1"
    real.mkdir(parents=True)
    (real / ONNX_META).write_text("{}")  # an earlier export: qatune's to replace
    link = tmp_path / "current"
    link.symlink_to(real)
    export_onnx(str(tiny_bert), link, window=WindowConfig(64, 16, 16))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert OnnxAnswerer(real).window.max_seq_length == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "exports"]
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["v1"]  # no temporaries beside it
    assert ".qatune.lock" not in {p.name for p in real.iterdir()}


def test_a_figure_is_written_through_a_symlink_and_leaves_no_temporary(tmp_path):
    """Figures follow the rule of every write: the link kept, its target replaced whole, no .tmp left."""
    from qatune.figures import _pyplot, _save

    real, link = tmp_path / "real.png", tmp_path / "figure.png"
    real.write_bytes(b"old")
    link.symlink_to(real)
    figure = _pyplot().figure()
    figure.gca().plot([0, 1], [1, 0])
    _save(figure, link)
    assert link.is_symlink() and real.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "real.png"]

"""Trackers are checked before a run makes a folder or loads a model: installed, reachable (a server that
answers within a few seconds), writable; one error line, never a hang. The endpoints are local sockets:
one that accepts and never answers, and a closed port; no network is used."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import time
import types

import pytest
import yaml

from conftest import tiny_config, write_config
from qatune.cli.main import main
from qatune.errors import ConfigError
from qatune.training import trackers
from qatune.training.trackers import RunInfo, check_trackers, open_feed

PROXIES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture(autouse=True)
def fast_checks(monkeypatch, tmp_path):
    """A short probe; no proxy between the probe and the local sockets; no W&B settings of this machine;
    and, were the check missing, an MLflow client that gives up in seconds instead of retrying for minutes."""
    monkeypatch.setattr(trackers, "PROBE_SECONDS", 0.5)
    for name in (*PROXIES, "WANDB_MODE", "WANDB_DISABLED", "WANDB_BASE_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")


@pytest.fixture
def silent_server():
    """http://127.0.0.1:PORT of a socket that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def closed_port() -> str:
    """http://127.0.0.1:PORT where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def answering_server():
    """http://127.0.0.1:PORT of an HTTP server that answers every request with 404."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_wandb(monkeypatch):
    """A stand-in `wandb` package (the real one is not installed here) that records its runs."""
    runs: list[dict] = []

    class Run:
        def __init__(self, **kw) -> None:
            self.id, self.summary = kw["name"], {}
            runs.append(kw)

        def log(self, metrics, step) -> None: ...

        def finish(self, exit_code) -> None: ...

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: Run(**kw)))
    return runs


def test_an_mlflow_server_that_never_answers_is_refused_within_seconds(monkeypatch, silent_server):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent_server)
    began = time.perf_counter()
    with pytest.raises(ConfigError, match=r"--report-to mlflow: \$MLFLOW_TRACKING_URI=http.*no answer within 0.5 s"):
        check_trackers(["mlflow"])
    assert time.perf_counter() - began < 5


def test_a_closed_port_and_an_unknown_host_are_refused(monkeypatch, closed_port):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port)
    with pytest.raises(ConfigError, match="connection refused; start the tracking server, or set MLFLOW_TRACKING_URI"):
        check_trackers(["mlflow"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:secret@no-such-host.invalid:5000")
    with pytest.raises(ConfigError, match="cannot be reached") as caught:
        check_trackers(["mlflow"])
    assert "secret" not in str(caught.value) and "user:***@" in str(caught.value)


def test_a_server_that_answers_passes_whatever_its_status(monkeypatch, answering_server):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", answering_server)
    check_trackers(["mlflow", "tensorboard"])


def test_local_mlflow_stores_must_be_writable(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/mlflow.db")
    with pytest.raises(ConfigError, match=r"mlflow.db cannot be made \(.*a-file is a file\)"):
        check_trackers(["mlflow"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}")  # a folder, not a database file
    with pytest.raises(ConfigError, match="is a folder"):
        check_trackers(["mlflow"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")
    check_trackers(["mlflow"])  # made when the first run starts
    assert not (tmp_path / "new").exists()  # the check writes nothing
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file://{tmp_path / 'mlruns'}")
    with pytest.raises(ConfigError, match="a file store, which this MLflow refuses.*MLFLOW_ALLOW_FILE_STORE=true"):
        check_trackers(["mlflow"])
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_trackers(["mlflow"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(blocker))
    with pytest.raises(ConfigError, match="is not a folder"):
        check_trackers(["mlflow"])


def test_wandb_online_needs_its_server_and_offline_needs_none(monkeypatch, tmp_path, fake_wandb, silent_server):
    monkeypatch.setenv("WANDB_BASE_URL", silent_server)
    with pytest.raises(ConfigError, match="--report-to wandb: the W&B server .*no answer.*WANDB_MODE=offline"):
        check_trackers(["wandb"])
    monkeypatch.setattr(trackers, "_http_problem", lambda url: pytest.fail(f"probed {url} offline"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    check_trackers(["wandb"])
    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / "wandb-dir" / "wandb").mkdir(parents=True)  # what `wandb offline` writes in this folder
    (tmp_path / "wandb-dir" / "wandb" / "settings").write_text("[default]\nmode = offline\n")
    check_trackers(["wandb"])


def test_wandb_offline_trains_without_a_server(tiny_bert, tmp_path, monkeypatch, fake_wandb):
    from qatune.training.trainer import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    train(tiny_config(tiny_bert, tmp_path / "run", report_to="wandb", max_steps=2, eval_steps=2), progress_bar=False)
    assert [run["name"] for run in fake_wandb] == ["run"]


def _never_loaded(*args, **kwargs):
    raise AssertionError("the model was loaded before the trackers were checked")


def test_train_with_an_unreachable_tracker_is_one_error_and_leaves_nothing(
    tiny_bert, tmp_path, monkeypatch, capsys, silent_server
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent_server)
    monkeypatch.setattr("qatune.training.trainer.load_model", _never_loaded)
    out = tmp_path / "runs" / "minilm"
    code = main(
        ["train", "--model", str(tiny_bert), "--train-data", "sample", "--output", str(out), "--report-to", "mlflow"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --report-to mlflow:"), err
    assert "no answer within 0.5 s" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_missing_wandb_fails_before_any_folder(tiny_bert, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    monkeypatch.setattr("qatune.training.trainer.load_model", _never_loaded)
    out = tmp_path / "run"
    code = main(
        ["train", "--model", str(tiny_bert), "--train-data", "sample", "--output", str(out), "--report-to", "wandb"]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and err == "error: --report-to wandb needs the wandb package: pip install wandb (or qatune[trackers])\n"
    )
    assert not out.exists()  # no qatune.json, no lock file


def test_a_tracker_that_fails_to_start_its_run_is_one_error(tmp_path, monkeypatch):
    opened: list[str] = []

    class Fine:
        run_id = None

        def __init__(self, run, run_id) -> None:
            opened.append("fine")

        def log(self, metrics, step) -> None: ...

        def finish(self, summary, state) -> None:
            opened.append(state)

    def refused(run, run_id):
        raise RuntimeError("API key rejected\n(a long server answer)")

    monkeypatch.setitem(trackers.OPENERS, "tensorboard", Fine)
    monkeypatch.setitem(trackers.OPENERS, "wandb", refused)
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace())
    with pytest.raises(
        ConfigError, match=r"^--report-to wandb: it could not start a run \(RuntimeError: API key rejected\)$"
    ):
        open_feed(["tensorboard", "wandb"], RunInfo("r", tmp_path / "r", {}))
    assert opened == ["fine", "failed"]  # the run it had started is ended, not left running


def test_a_sweep_checks_its_trackers_before_its_folder_and_database(tiny_bert, tmp_path, monkeypatch, closed_port):
    from qatune.sweep import SweepOptions, parse_sweep, run_sweep

    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port)
    spec = parse_sweep(yaml.safe_load(write_config(tmp_path / "s.yaml", tiny_bert, run_cap=1).read_text()))
    with pytest.raises(ConfigError, match="--report-to mlflow: .*connection refused"):
        run_sweep(spec, SweepOptions("s", tmp_path / "sweeps", report_to=("mlflow",)), progress_bar=False)
    assert not (tmp_path / "sweeps").exists()


def test_a_study_checks_its_trackers_before_its_folder(tiny_bert, tmp_path, monkeypatch, closed_port):
    from qatune.study import parse_study, run_study

    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port)
    tiny = {"model": str(tiny_bert), "max_steps": 2, "eval_steps": 2, "max_seq_length": 128, "doc_stride": 32}
    study = {
        "name": "checked",
        "data": {"train": "sample", "test": "sample:validation"},
        "experiments": [{"name": "one", "learning_rate": 1e-4, **tiny}],
        "report": {"dir": str(tmp_path / "study")},
        "report_to": "mlflow",
    }
    with pytest.raises(ConfigError, match="--report-to mlflow: .*connection refused"):
        run_study(parse_study(study), progress_bar=False)
    assert not (tmp_path / "study").exists()

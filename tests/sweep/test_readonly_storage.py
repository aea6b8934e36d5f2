"""Commands that only read a sweep (show, dashboard, --join's check) write nothing to a storage that does not
hold it: a user's own SQLite database stays byte for byte, a missing file is not created, an empty one stays
empty. A storage that holds the sweep is read without a byte changed."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from qatune.cli.main import main
from qatune.errors import ConfigError
from qatune.sweep import SweepOptions, parse_sweep
from qatune.sweep.runner import dashboard_app, show_sweep
from qatune.sweep.storage import open_study, quiet_optuna

CONFIG = {
    "method": "random",
    "metric": {"name": "f1", "goal": "maximize"},
    "parameters": {"learning_rate": {"values": [1e-4, 1e-3]}},
    "run_cap": 2,
    "base": {"model": "default", "train_data": "sample"},
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def user_db(tmp_path) -> Path:
    """A user's own SQLite database: one table of theirs, nothing of Optuna's."""
    path = tmp_path / "my-app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('ada')")
    return path


@pytest.fixture
def sweep_db(tmp_path) -> Path:
    """A storage holding the qatune sweep `s` with one finished trial, made as `qatune sweep` makes it."""
    options = SweepOptions("s", tmp_path / "s")
    with quiet_optuna():
        study, _ = open_study(parse_sweep(CONFIG), options)
        trial = optuna.trial.create_trial(
            params={"learning_rate": 1e-3},
            distributions={"learning_rate": optuna.distributions.CategoricalDistribution([1e-4, 1e-3])},
            value=50.0,
            user_attrs={"f1": 50.0, "exact_match": 40.0, "correct": 4},
        )
        study.add_trial(trial)
    return tmp_path / "s" / "sweep.db"


def cli(*args: str) -> int:
    return main(["sweep", *args])


@pytest.mark.parametrize("command", ["show", "dashboard"])
def test_a_users_database_stays_byte_identical(user_db, tmp_path, capsys, command):
    before = digest(user_db)
    url = f"sqlite:///{user_db}"
    assert cli(command, "nope", "--storage", url, "--dir", str(tmp_path / "runs")) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: no sweep 'nope'") and "without Optuna's tables" in err[0]
    assert digest(user_db) == before
    with sqlite3.connect(f"file:{user_db}?mode=ro", uri=True) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["users"]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["show", "dashboard"])
def test_a_missing_file_is_not_created(tmp_path, capsys, command):
    missing = tmp_path / "none.db"
    assert cli(command, "nope", "--storage", f"sqlite:///{missing}") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert sorted(tmp_path.iterdir()) == []


def test_an_empty_sweep_db_stays_empty(tmp_path, capsys):
    folder = tmp_path / "z"
    folder.mkdir()
    (folder / "sweep.db").touch()
    for command in ("show", "dashboard"):
        assert cli(command, "z", "--dir", str(tmp_path)) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "is an empty file" in err[0]
    assert (folder / "sweep.db").stat().st_size == 0 and sorted(folder.iterdir()) == [folder / "sweep.db"]


def test_joining_checks_before_it_creates_tables(user_db, tmp_path, capsys):
    before = digest(user_db)
    assert cli("--join", "nope", "--storage", f"sqlite:///{user_db}", "--dir", str(tmp_path / "runs")) == 2
    assert "without Optuna's tables" in capsys.readouterr().err
    assert digest(user_db) == before and not (tmp_path / "runs").exists()


def test_other_files_are_refused_unchanged(tmp_path):
    from qatune.sweep.storage import check_sweep_exists

    garbage = tmp_path / "notes.db"
    garbage.write_text("not a database\n")
    with pytest.raises(ConfigError, match="cannot read .* as a SQLite database"):
        check_sweep_exists(SweepOptions("x", tmp_path, storage=f"sqlite:///{garbage}"))
    assert garbage.read_text() == "not a database\n"
    with pytest.raises(ConfigError, match="is not a file"):
        check_sweep_exists(SweepOptions("x", tmp_path, storage=f"sqlite:///{tmp_path}"))
    with pytest.raises(ConfigError, match="give the sweep's SQLite file"):
        check_sweep_exists(SweepOptions("x", tmp_path, storage="sqlite://"))


def test_server_databases_are_inspected_with_selects_only(user_db, tmp_path):
    """The path PostgreSQL and MySQL take (SQLAlchemy's inspector, then a SELECT), run here on SQLite."""
    from qatune.sweep.storage import _rdb_studies

    before = digest(user_db)
    options = SweepOptions("x", tmp_path, storage=f"sqlite:///{user_db}")
    with pytest.raises(ConfigError, match="the database has no Optuna tables"):
        _rdb_studies(options, "no sweep 'x'")
    assert digest(user_db) == before


def test_an_existing_sweep_is_read_without_a_byte_changed(sweep_db, tmp_path, capsys):
    before = digest(sweep_db)
    options = SweepOptions("s", tmp_path / "s")
    report = show_sweep(options, tmp_path / "out", figures=False)
    assert [row.name for row in report.trials] == ["trial-0"] and (tmp_path / "out" / "trials.csv").is_file()
    assert cli("show", "other", "--storage", f"sqlite:///{sweep_db}", "--out", str(tmp_path / "other")) == 2
    err = capsys.readouterr().err
    assert "no sweep 'other'" in err and "it holds s" in err
    assert digest(sweep_db) == before and not (tmp_path / "other").exists()


def test_the_dashboard_lists_the_sweep_and_writes_nothing(sweep_db, tmp_path):
    pytest.importorskip("optuna_dashboard")
    before = digest(sweep_db)
    app = dashboard_app(SweepOptions("s", tmp_path / "s"))
    environ: dict = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    statuses: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["200 OK"] and b'"study_name": "s"' in body.replace(b'"study_name":"s"', b'"study_name": "s"')
    assert digest(sweep_db) == before

"""`qatune serve`'s API key and CORS origins: a key that is not printable ASCII, or an origin that is not one, is
refused at startup with one `error:` line; no header value can make a keyed request a 500 (a wrong one, in any
encoding, is a 401); `*` is accepted with a warning about what it allows."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from qatune.cli.main import main
from qatune.errors import ConfigError
from qatune.serving.app import create_app
from qatune.serving.config import ServeConfig
from qatune.serving.models import Models

KEY = "s3cret-Key_1.~"


def ready_models() -> Models:
    """Nothing loaded but ready: the key is checked before any model is asked."""
    models = Models()
    models.ready = True
    return models


@pytest.fixture
def client():
    with TestClient(create_app(ServeConfig(api_key=KEY), ready_models()), raise_server_exceptions=False) as test:
        yield test


def one_error(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("key", ["k\udcff", "sécret", "k\x7f", "tab\tkey", "ключ", " padded"])
def test_keys_that_clients_cannot_send_are_refused_at_startup(key, capsys):
    with pytest.raises(ConfigError, match="API key"):
        create_app(ServeConfig(api_key=key), ready_models())
    assert main(["serve", "--api-key", key, "--model", "./no-such-model", "--port", "8941"]) == 2
    line = one_error(capsys)
    assert "API key" in line and key.strip() not in line  # the key itself is never echoed


def test_a_key_from_the_environment_is_checked_the_same(monkeypatch, capsys):
    monkeypatch.setenv("QATUNE_API_KEY", "sécret")
    assert main(["serve", "--model", "./no-such-model", "--port", "8942"]) == 2
    line = one_error(capsys)
    assert "not printable ASCII" in line and "$QATUNE_API_KEY" in line


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": b"s\xc3\xa9cret"},  # UTF-8
        {"X-API-Key": b"\xff\xfe"},  # not UTF-8 at all
        {"X-API-Key": KEY.encode() + b"\xff"},
        {"X-API-Key": b""},
        {"Authorization": b"Bearer \xff"},
        {"Authorization": b"Bearer " + "ключ".encode()},
        {"Authorization": b"Basic " + KEY.encode()},
        {"Authorization": KEY.encode()},
        {"Authorization": b"Bearer"},
        {"X-API-Key": KEY.upper().encode()},
    ],
)
def test_odd_or_wrong_headers_get_401_never_500(client, headers):
    response = client.get("/v1/models", headers=headers)
    assert response.status_code == 401 and "API key" in response.json()["detail"]


def test_the_key_is_accepted_in_both_forms(client):
    assert client.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": f"bearer   {KEY}  "}).status_code == 200
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("origin", "hint"),
    [
        ("not a url", None),
        ("null", None),
        ("localhost:3000", None),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("https://example.com/app", "https://example.com"),
        ("HTTPS://Example.COM", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://x:99999", None),
        ("http://user@example.com", "http://example.com"),
    ],
)
def test_bad_origins_are_refused(origin, hint, capsys):
    with pytest.raises(ConfigError, match="--cors-origin"):
        create_app(ServeConfig(cors_origins=[origin]), ready_models())
    assert main(["serve", "--cors-origin", origin, "--model", "./no-such-model", "--port", "8943"]) == 2
    line = one_error(capsys)
    assert f"--cors-origin {origin!r}: not an origin" in line
    assert (f"did you mean {hint}?" in line) if hint else "did you mean" not in line


def test_a_good_origin_is_echoed_only_to_itself():
    config = ServeConfig(cors_origins=["http://localhost:3000", "https://[::1]:8443"])
    with TestClient(create_app(config, ready_models())) as client:
        ok = client.get("/healthz", headers={"Origin": "http://localhost:3000"})
        assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = client.get("/healthz", headers={"Origin": "not a url"})
        assert "access-control-allow-origin" not in other.headers


def test_any_origin_is_allowed_with_a_warning(caplog, monkeypatch):
    root = logging.getLogger("qatune")  # as a library: not the CLI's handler an earlier main() left
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "propagate", True)
    with caplog.at_level(logging.WARNING, logger="qatune"):
        app = create_app(ServeConfig(cors_origins=["*"]), ready_models())
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "--cors-origin '*'" in warning and "any web page" in warning
    with TestClient(app) as client:
        assert (
            client.get("/healthz", headers={"Origin": "https://a.example"}).headers["access-control-allow-origin"]
            == "*"
        )

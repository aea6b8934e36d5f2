"""`qatune serve --index`: POST /v1/ask answers from the documents, cited; its limits and errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qatune.documents.build import build_index
from qatune.errors import ConfigError
from qatune.serving.app import create_app
from qatune.serving.config import ServeConfig
from qatune.serving.models import Models

DOCS = {
    "warranty.txt": "The warranty covers parts and labour for two years from the date of purchase, but not water "
    "damage or repairs made by anyone other than an authorised service centre.",
    "battery.txt": "The battery lasts about nine hours of video playback, and charging it from empty takes ninety "
    "minutes with the supplied charger.",
    "shipping.txt": "Orders are shipped within three working days; customers in Norway and Iceland pay an extra fee "
    "for delivery.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("documents")
    for name, text in DOCS.items():
        (root / "docs").mkdir(exist_ok=True)
        (root / "docs" / name).write_text(text)
    build_index([root / "docs"], root / "idx", progress_bar=False)
    return root / "idx"


@pytest.fixture(scope="module")
def client(index, tiny_bert):
    config = ServeConfig(model=str(tiny_bert), index=str(index), max_question_chars=200)
    models = Models()
    models.load(config)
    with TestClient(create_app(config, models)) as test_client:
        yield test_client
    models.close()


def test_ask_answers_from_the_documents_with_citations(client, tiny_bert):
    response = client.post("/v1/ask", json={"question": "How long does the battery last?", "passages": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == str(tiny_bert) and body["passages"] == 2 and body["took_ms"] > 0
    assert 1 <= len(body["answers"]) <= 3 and isinstance(body["found"], bool)
    for answer in body["answers"]:
        name = answer["file"].rsplit("/", 1)[1]
        assert DOCS[name][answer["start"] : answer["end"]] == answer["text"]
        assert answer["passage"][answer["passage_start"] : answer["passage_end"]] == answer["text"]
    trusting = {"question": "How long does the battery last?", "passages": 2, "retrieval_weight": 100}
    response = client.post("/v1/ask", json=trusting)
    assert response.status_code == 200 and {a["retrieval_rank"] for a in response.json()["answers"]} == {1}


@pytest.mark.parametrize(
    "payload, words",
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "q" * 201}, "at most 200 characters"),
        ({"question": "Who?", "passages": 0}, "passages"),
        ({"question": "Who?", "passages": 51}, "passages"),
        ({"question": "Who?", "top_k": "3"}, "top_k"),
        ({"question": "Who?", "context": "x"}, "context"),
        ({"question": "Who\u0000?"}, "NUL"),
        ({"question": "Who?", "retrieval_weight": -1}, "retrieval_weight"),
        ({"question": "Who?", "retrieval_weight": 101}, "retrieval_weight"),
        ({"question": "Who?", "retrieval_weight": "much"}, "retrieval_weight"),
    ],
)
def test_bad_requests_are_422(client, payload, words):
    response = client.post("/v1/ask", json=payload)
    assert response.status_code == 422 and words in response.text


def test_without_an_index_there_is_no_ask_route(tiny_bert):
    app = create_app(ServeConfig(model=str(tiny_bert)), Models())
    assert "/v1/ask" not in app.openapi()["paths"]


def test_a_folder_that_is_not_an_index_is_refused_before_the_model(tmp_path, tiny_bert):
    with pytest.raises(ConfigError, match="is not a qatune index"):
        Models().load(ServeConfig(model=str(tiny_bert), index=str(tmp_path)))


def test_two_servers_share_a_postgresql_index_that_a_writer_updates(tmp_path, tiny_bert, pg_index):
    """Servers read one database index; a `qatune index` run adds a file; both answer from it; a
    database that goes away is a 503, not a 500."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "warranty.txt").write_text(DOCS["warranty.txt"])
    build_index([tmp_path / "docs"], pg_index, progress_bar=False)
    config = ServeConfig(model=str(tiny_bert), index=pg_index, max_question_chars=200)
    servers = [Models(), Models()]
    for models in servers:
        models.load(config)
    clients = [TestClient(create_app(config, models)) for models in servers]
    (tmp_path / "docs" / "battery.txt").write_text(DOCS["battery.txt"])
    build_index([tmp_path / "docs"], pg_index, progress_bar=False)
    try:
        for client in clients:
            listed = client.get("/v1/models").json()["documents"]
            assert (listed["files"], listed["index"].startswith("postgresql://")) == (2, True)
            response = client.post("/v1/ask", json={"question": "How long does the battery last?", "passages": 1})
            assert response.status_code == 200, response.text
            assert response.json()["answers"][0]["file"].endswith("battery.txt")
        servers[0].index.url = "postgresql://qatune:pw@127.0.0.1:1/gone"  # as if the database went away
        response = clients[0].post("/v1/ask", json={"question": "How long does the battery last?"})
        assert response.status_code == 503 and "cannot connect" in response.text and "pw@" not in response.text
    finally:
        for models in servers:
            models.close()

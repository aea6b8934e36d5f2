"""`qatune serve`: the HTTP API contract, its limits and errors, and a fuzz test against its own schema."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from qatune.serving.app import create_app
from qatune.serving.config import ServeConfig
from qatune.serving.models import Models

CONTEXT = "Earth is the third planet from the Sun and the only place known in the universe where life has originated."


@pytest.fixture(scope="module")
def models(tiny_bert) -> Models:
    loaded = Models()
    loaded.load(ServeConfig(model=str(tiny_bert), compare_with=str(tiny_bert)))
    return loaded


@pytest.fixture(scope="module")
def client(models, tiny_bert):
    config = ServeConfig(
        model=str(tiny_bert),
        compare_with=str(tiny_bert),
        max_context_chars=5000,
        max_question_chars=200,
        max_batch=4,
        max_body_bytes=20_000,
    )
    with TestClient(create_app(config, models)) as test_client:
        yield test_client


def test_answer_contract_and_comparison(client, tiny_bert):
    body = client.post("/v1/answer", json={"context": CONTEXT, "question": "What is Earth?", "top_k": 3}).json()
    assert body["model"] == str(tiny_bert) and len(body["answers"]) == 3 and body["took_ms"] > 0
    for answer in body["answers"]:
        assert set(answer) == {"text", "probability", "start", "end", "score", "raw_probability"}
        assert CONTEXT[answer["start"] : answer["end"]] == answer["text"] and 0 < answer["probability"] < 1
    assert body["compare"]["answers"] == body["answers"]  # the same model on both sides answers alike
    assert 0 < body["no_answer_probability"] < 1
    assert body["compare"]["no_answer_probability"] == body["no_answer_probability"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert [m["role"] for m in client.get("/v1/models").json()["models"]] == ["primary", "compare"]


def test_a_title_is_taken(client):
    """A title is part of the request (read by models trained with titles; this one ignores it)."""
    asked = {"context": CONTEXT, "question": "What is Earth?"}
    plain = client.post("/v1/answer", json=asked).json()
    titled = client.post("/v1/answer", json={**asked, "title": "Earth"}).json()
    assert titled["answers"] == plain["answers"]
    batch = client.post("/v1/answer:batch", json={"items": [{**asked, "title": "Earth"}]})
    assert batch.status_code == 200 and batch.json()["results"][0]["answers"] == plain["answers"]


def test_batch_matches_single_answers(client):
    items = [{"context": CONTEXT, "question": q} for q in ("What is Earth?", "Where has life originated?")]
    batch = client.post("/v1/answer:batch", json={"items": items, "top_k": 2}).json()
    assert len(batch["results"]) == 2
    for item, result in zip(items, batch["results"]):
        single = client.post("/v1/answer", json={**item, "top_k": 2}).json()
        assert [a["text"] for a in single["answers"]] == [a["text"] for a in result["answers"]]


@pytest.mark.parametrize(
    "payload, status, words",
    [
        ({"context": "x" * 5001, "question": "q?"}, 422, "at most 5000 characters"),
        ({"context": CONTEXT, "question": "q" * 201}, 422, "at most 200 characters"),
        ({"context": "", "question": "q?"}, 422, "context"),
        ({"context": "   \n", "question": "q?"}, 422, "context"),
        ({"context": CONTEXT, "question": 7}, 422, "question"),
        ({"context": CONTEXT, "question": "q?", "top_k": 11}, 422, "top_k"),
        ({"context": CONTEXT}, 422, "question"),
        ({"context": CONTEXT, "question": "q?", "title": 7}, 422, "title"),
        ({"context": CONTEXT, "question": "q?", "title": "t" * 1001}, 422, "at most 1000 characters"),
    ],
)
def test_limits_and_bad_requests(client, payload, status, words):
    response = client.post("/v1/answer", json=payload)
    assert response.status_code == status and words in json.dumps(response.json())


def test_malformed_json_body_size_and_batch_limit(client):
    assert (
        client.post("/v1/answer", content=b"{bad json", headers={"Content-Type": "application/json"}).status_code == 422
    )
    big = client.post("/v1/answer", json={"context": "x" * 30_000, "question": "q?"})
    assert big.status_code == 413 and "--max-body-bytes" in big.json()["detail"]
    items = [{"context": CONTEXT, "question": "What?"}] * 5
    over = client.post("/v1/answer:batch", json={"items": items})
    assert over.status_code == 422 and "at most 4 items" in json.dumps(over.json())
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["AnswerRequest"]["properties"]["context"]["maxLength"] == 5000  # limits are in the schema
    assert client.post("/v1/answer:batch", json={"items": []}).status_code == 422


def test_api_key(models, tiny_bert):
    app = create_app(ServeConfig(model=str(tiny_bert), compare_with=str(tiny_bert), api_key="s3cret"), models)
    with TestClient(app) as client:
        payload = {"context": CONTEXT, "question": "What is Earth?"}
        assert client.post("/v1/answer", json=payload).status_code == 401
        assert client.post("/v1/answer", json=payload, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/v1/answer", json=payload, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200  # health needs no key


@pytest.mark.parametrize(
    "context",
    [
        "Zoë visited Ærøskøbing in 1999; the café served crème brûlée.",
        "東京は日本の首都であり、世界最大の都市圏の一つです。",
        "The rocket 🚀 launched at dawn 🌅 and reached orbit in 9 minutes.",
    ],
)
def test_unicode_contexts_give_exact_spans(client, context):
    body = client.post("/v1/answer", json={"context": context, "question": "What happened?", "top_k": 5}).json()
    assert body["answers"]
    for answer in body["answers"]:
        assert context[answer["start"] : answer["end"]] == answer["text"]


def test_long_context_many_windows(client):
    context = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400))  # ~4,000 tokens
    response = client.post("/v1/answer", json={"context": context[:5000], "question": "Which topic?"})
    assert response.status_code == 200 and response.json()["answers"]


def test_the_work_bound_is_windows_not_characters(tiny_bert):
    """--max-request-windows: 4,800 characters of prose pass, as many of digits (more windows) get a 422
    naming the flag; the batch route counts its items together, and the server answers on afterwards."""
    config = ServeConfig(model=str(tiny_bert), max_request_windows=16)
    loaded = Models()
    loaded.load(config)
    prose = ("The river runs to the sea past the old mill. " * 120)[:4800]
    digits = "1,2;3.4-5/6 " * 400
    try:
        with TestClient(create_app(config, loaded)) as client:
            assert client.post("/v1/answer", json={"context": prose, "question": "Where?"}).status_code == 200
            refused = client.post("/v1/answer", json={"context": digits, "question": "Where?"})
            assert refused.status_code == 422 and "--max-request-windows" in refused.json()["detail"]
            items = [{"context": prose, "question": "Where?"}] * 4
            batch = client.post("/v1/answer:batch", json={"items": items})
            assert batch.status_code == 422 and "at most 16 per request" in batch.json()["detail"]
            assert client.post("/v1/answer", json={"context": prose, "question": "Where?"}).status_code == 200
    finally:
        loaded.close()


def test_page_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="question"' in page.text and "/v1/answer" in page.text


def test_fuzz_against_own_schema(client, models, tiny_bert):
    """Schemathesis: generated requests (valid and not) never give a 500, and responses match the schema."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    app = create_app(
        ServeConfig(model=str(tiny_bert), compare_with=str(tiny_bert), max_context_chars=2000, max_batch=3), models
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, case.body, response.text)
            case.validate_response(response)

        try:
            check()
        except AssertionError as exc:
            failures.append(str(exc)[:500])
    assert not failures, failures


@pytest.fixture(scope="module")
def v2_client(tiny_bert, tmp_path_factory):
    """A server of a model trained with unanswerable questions (SQuAD v2): its null answer competes."""
    import shutil

    folder = tmp_path_factory.mktemp("v2") / "model"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "qatune_with_null": True}))
    with TestClient(create_app(ServeConfig(model=str(folder)))) as client:
        yield client


def test_null_answer_of_a_v2_model(v2_client):
    """A model trained with unanswerable questions (SQuAD v2) can answer "" (the null answer): the API
    returns it as an empty text at 0..0, with its probability among the spans'."""
    body = v2_client.post("/v1/answer", json={"context": "Hi there.", "question": "Who?", "top_k": 10}).json()
    null = [a for a in body["answers"] if a["text"] == ""]
    assert len(null) == 1 and (null[0]["start"], null[0]["end"]) == (0, 0)
    assert sum(a["probability"] for a in body["answers"]) == pytest.approx(1.0, abs=1e-4)  # every candidate shown
    assert body["no_answer_probability"] == pytest.approx(null[0]["probability"], abs=1e-6)


def test_hf_format_parameters_and_errors(client):
    """The HF inference format: one object for top_k 1, a list above; parameters checked like the rest."""
    inputs = {"question": "What is Earth?", "context": CONTEXT}
    ours = client.post("/v1/answer", json={**inputs, "top_k": 3}).json()["answers"]
    one = client.post("/", json={"inputs": inputs}).json()
    assert one == {
        "answer": ours[0]["text"],
        "score": ours[0]["probability"],
        "start": ours[0]["start"],
        "end": ours[0]["end"],
    }
    three = client.post("/v1/hf", json={"inputs": inputs, "parameters": {"top_k": 3}}).json()
    assert [a["answer"] for a in three] == [a["text"] for a in ours]
    short = client.post("/v1/hf", json={"inputs": inputs, "parameters": {"top_k": 5, "max_answer_len": 1}}).json()
    assert all(len(a["answer"].split()) == 1 for a in short)  # one token, and whole words: one word
    # handle_impossible_answer: true lets the empty answer compete even for a SQuAD v1 model
    impossible = client.post("/", json={"inputs": inputs, "parameters": {"handle_impossible_answer": True, "top_k": 3}})
    texts = [a["answer"] for a in impossible.json()]
    no_answer = client.post("/v1/answer", json={**inputs, "top_k": 1}).json()["no_answer_probability"]
    assert ("" in texts) == (no_answer > ours[0]["probability"]) and len(texts) == 3
    for body, field in [
        ({"inputs": inputs, "parameters": {"top_k": "2"}}, "top_k"),
        ({"inputs": inputs, "parameters": {"top_k": 0}}, "top_k"),
        ({"inputs": inputs, "parameters": {"max_answer_len": 1.5}}, "max_answer_len"),
        ({"inputs": inputs, "parameters": {"temperature": 2}}, "temperature"),
        ({"inputs": {**inputs, "context": " "}}, "context"),
        ({"inputs": {"question": "Who?"}}, "context"),
        ({"inputs": [inputs]}, "inputs"),
    ]:
        response = client.post("/", json=body)
        assert response.status_code == 422 and field in json.dumps(response.json()), (body, response.text)


def test_hf_format_null_answer_of_a_v2_model(v2_client):
    """The empty answer as HF gives it (0..0), and never with handle_impossible_answer false."""
    inputs = {"question": "Who?", "context": "Hi there."}
    ours = v2_client.post("/v1/answer", json={**inputs, "top_k": 10}).json()["answers"]
    answers = v2_client.post("/v1/hf", json={"inputs": inputs, "parameters": {"top_k": 10}}).json()
    assert [(a["answer"], a["start"], a["end"]) for a in answers] == [(a["text"], a["start"], a["end"]) for a in ours]
    assert ("", 0, 0) in [(a["answer"], a["start"], a["end"]) for a in answers]
    parameters = {"top_k": 10, "handle_impossible_answer": False}
    never = v2_client.post("/v1/hf", json={"inputs": inputs, "parameters": parameters}).json()
    assert [a["answer"] for a in never] == [a["text"] for a in ours if a["text"]]


def test_micro_batches_answer_concurrent_requests_together(tiny_bert):
    """Requests that arrive together share forward passes, and each gets exactly its own answers."""
    import concurrent.futures

    from qatune.answering.answerer import Query
    from qatune.answering.batching import MicroBatcher
    from qatune.answering.torch_backend import Answerer

    answerer = Answerer(str(tiny_bert))
    questions = [f"What is number {i}?" for i in range(24)]
    alone = [answerer.predict_many([(CONTEXT, q)], 2)[0].answers for q in questions]
    batcher = MicroBatcher(lambda: answerer, max_questions=8, wait_ms=50)
    try:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            found = list(pool.map(lambda q: batcher.ask(Query([(CONTEXT, q)], 2))[0].answers, questions))
        assert batcher.batches < len(questions) and batcher.batches >= 3  # shared passes, never over 8 questions
        for a, b in zip(alone, found):
            assert [x.text for x in a] == [x.text for x in b]
            assert [x.probability for x in a] == pytest.approx([x.probability for x in b], rel=1e-4)
        with pytest.raises(Exception, match="empty context"):
            batcher.ask(Query([(" ", "Who?")], 1))
        assert batcher.ask(Query([(CONTEXT, "Who?")], 1))  # one caller's bad input did not stop the thread
    finally:
        batcher.close()
    assert not batcher.thread.is_alive()


def test_one_bad_query_in_a_batch_fails_alone(tiny_bert):
    from qatune.answering.answerer import Query
    from qatune.answering.torch_backend import Answerer
    from qatune.errors import QatuneError

    answerer = Answerer(str(tiny_bert))
    good, bad = Query([(CONTEXT, "What is Earth?")], 1), Query([(CONTEXT, "")], 1)
    results = answerer.predict_queries([good, bad, good])
    assert isinstance(results[1], QatuneError) and "empty question" in str(results[1])
    assert results[0][0].answers == results[2][0].answers == answerer.predict_many(good.pairs, 1)[0].answers


def test_micro_batches_wait_for_as_many_requests_as_are_expected(tiny_bert):
    """Callers that each ask again once answered fill whole batches (after the first, which takes
    whoever is there), and a lone caller is answered at once even with a long --batch-wait-ms."""
    import concurrent.futures

    from qatune.answering.answerer import Query
    from qatune.answering.batching import MicroBatcher
    from qatune.answering.torch_backend import Answerer

    answerer = Answerer(str(tiny_bert))
    sizes: list[int] = []
    real = answerer.predict_queries
    answerer.predict_queries = lambda queries: sizes.append(len(queries)) or real(queries)  # type: ignore[method-assign]
    batcher = MicroBatcher(lambda: answerer, max_questions=32, wait_ms=1000)
    try:
        began = time.monotonic()
        assert batcher.ask(Query([(CONTEXT, "Who?")], 1))
        assert time.monotonic() - began < 0.5  # not the 1 s wait: nobody else was expected
        rounds, callers = 6, 4

        def caller(i: int) -> None:
            for _ in range(rounds):
                batcher.ask(Query([(CONTEXT, f"What is number {i}?")], 1))

        with concurrent.futures.ThreadPoolExecutor(callers) as pool:
            list(pool.map(caller, range(callers)))
        assert sum(sizes) == 1 + rounds * callers
        assert sizes.count(callers) >= rounds - 1, sizes  # whole rounds in one pass each
    finally:
        batcher.close()

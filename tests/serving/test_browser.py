"""The web page in a real browser (Debian's chromium, driven headless by Playwright), and the server
under concurrent load, both against a real `qatune serve` process."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ARTIFACTS = Path(os.environ.get("QATUNE_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(*args: str):
    """A real `qatune serve` process with `args`, once healthy; stopped after."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qatune.cli", "serve", *args, "--port", str(port), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if urllib.request.urlopen(f"{url}/healthz", timeout=2).status == 200:
                break
        except OSError:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.time() < deadline, "server did not become healthy"
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def server(tiny_bert):
    yield from _serve("--model", str(tiny_bert), "--compare-with", str(tiny_bert))


DOCUMENTS = {
    "warranty.txt": "The warranty covers parts and labour for two years from the date of purchase, but not water "
    "damage or repairs made by anyone other than an authorised service centre.",
    "battery.md": "# Battery\n\nThe battery lasts about nine hours of video playback, and charging it from empty "
    "takes ninety minutes with the supplied charger.",
    "shipping.html": "<html><body><p>Orders are shipped within three working days; customers in Norway and Iceland "
    "pay an extra fee for delivery.</p></body></html>",
}


@pytest.fixture(scope="module")
def documents_server(tiny_bert, tmp_path_factory):
    from qatune.documents.build import build_index

    root = tmp_path_factory.mktemp("documents")
    (root / "docs").mkdir()
    for name, text in DOCUMENTS.items():
        (root / "docs" / name).write_text(text)
    build_index([root / "docs"], root / "idx", progress_bar=False)
    yield from _serve("--model", str(tiny_bert), "--index", str(root / "idx"))


def _chromium():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("no chromium; apt-get install chromium to run the browser test")


def _post(url: str, payload: dict) -> tuple[int, dict, float]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read()), time.perf_counter() - began


def test_page_in_headless_chromium(server):
    _chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        for name, viewport in (("desktop", {"width": 1200, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)
            page.goto(server + "/")
            page.select_option("[data-testid=example]", index=3)  # "What is Earth?"
            assert page.input_value("[data-testid=question]") == "What is Earth?"
            context = page.input_value("[data-testid=context]")
            page.fill("[data-testid=question]", "Which planet is third from the Sun?")
            with page.expect_response("**/v1/answer") as response:
                page.click("[data-testid=ask]")
            body = response.value.json()
            page.wait_for_selector("[data-testid=answer]")
            columns = page.locator("[data-testid=column]")
            warned = columns.nth(0).locator("[data-testid=no-answer]").count() == 1
            assert warned == (body["no_answer_probability"] > 0.5)  # the page flags a likely unanswerable question
            assert columns.count() == 2  # the model and the one it is compared with, side by side
            top = columns.nth(0).locator("[data-testid=answer] .text").first.inner_text()
            highlight = columns.nth(0).locator("[data-testid=highlight]").inner_text()
            assert top == highlight and highlight in context  # the highlight lands on the answer text
            second = columns.nth(0).locator("[data-testid=answer]").nth(1)
            second.click()
            assert (
                columns.nth(0).locator("[data-testid=highlight]").inner_text() == second.locator(".text").inner_text()
            )
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{name}: page scrolls sideways ({width}px)"
            page.screenshot(path=str(ARTIFACTS / f"serve-page-{name}.png"), full_page=True)
            page.close()
        browser.close()
    assert (ARTIFACTS / "serve-page-desktop.png").stat().st_size > 10_000


def test_documents_mode_in_headless_chromium(documents_server):
    """Ask the documents: answers with their source file named and the cited passage highlighted."""
    _chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        for name, viewport in (("desktop", {"width": 1200, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)
            page.goto(documents_server + "/")
            page.wait_for_selector("[data-testid=mode-documents]", state="visible")
            assert "3 files" in page.inner_text("[data-testid=modes]")
            page.check("[data-testid=mode-documents]")
            assert not page.is_visible("[data-testid=context]")  # no context to paste in this mode
            page.fill("[data-testid=question]", "How long does the battery last?")
            with page.expect_response("**/v1/ask") as response:
                page.click("[data-testid=ask]")
            body = response.value.json()
            page.wait_for_selector("[data-testid=doc-answer]")
            assert page.locator("[data-testid=not-found]").count() == (0 if body["found"] else 1)
            answers = page.locator("[data-testid=doc-answer]")
            assert answers.count() == len(body["answers"])
            for i, answer in enumerate(body["answers"]):
                assert answer["file"].rsplit("/", 1)[1] in answers.nth(i).locator("[data-testid=source]").inner_text()
            highlight = page.inner_text("[data-testid=doc-highlight]")
            assert highlight == body["answers"][0]["text"] and highlight in page.inner_text(
                "[data-testid=passage-view]"
            )
            if answers.count() > 1:
                answers.nth(1).click()
                assert page.inner_text("[data-testid=doc-highlight]") == body["answers"][1]["text"]
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{name}: page scrolls sideways ({width}px)"
            page.screenshot(path=str(ARTIFACTS / f"serve-documents-{name}.png"), full_page=True)
            page.close()
        browser.close()


def test_concurrent_load_has_no_errors(server):
    """8 clients at once for a few seconds (bench/serve.py runs the long version and reports latency)."""
    payload = {
        "context": "Earth is the third planet from the Sun and the only place known in the universe where "
        "life has originated.",
        "question": "What is Earth?",
        "top_k": 3,
    }
    stop = time.time() + 8
    expected = _post(server + "/v1/answer", payload)[1]["answers"]

    def client() -> list[tuple[int, list]]:
        seen = []
        while time.time() < stop:
            status, body, _ = _post(server + "/v1/answer", payload)
            seen.append((status, body["answers"]))
        return seen

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = [r for future in [pool.submit(client) for _ in range(8)] for r in future.result()]
    assert len(results) >= 16
    assert all(status == 200 and answers == expected for status, answers in results)  # no errors, no mixed-up answers


def test_hugging_face_inference_client(server):
    """huggingface_hub's own InferenceClient, pointed at the server's URL, gets qatune's answers."""
    from huggingface_hub import InferenceClient

    context = (
        "Earth is the third planet from the Sun and the only place known in the universe where life has originated."
    )
    question = "What is Earth?"
    ours = _post(server + "/v1/answer", {"context": context, "question": question, "top_k": 2})[1]["answers"]
    for url in (server, server + "/v1/hf"):
        client = InferenceClient(model=url, timeout=60)
        one = client.question_answering(question=question, context=context)
        assert (one.answer, one.start, one.end) == (ours[0]["text"], ours[0]["start"], ours[0]["end"])
        assert one.score == pytest.approx(ours[0]["probability"])
        two = client.question_answering(question=question, context=context, top_k=2, max_answer_len=30)
        assert [(a.answer, context[a.start : a.end]) for a in two] == [(o["text"], o["text"]) for o in ours]

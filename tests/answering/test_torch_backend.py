"""qatune.answering.torch_backend: Answerer on long contexts, batching, evaluation, input checks."""

from __future__ import annotations

import pytest

from qatune.answering.torch_backend import Answerer
from qatune.data.sources import load_data
from qatune.data.windows import WindowConfig
from qatune.errors import DataError
from qatune.evaluation.scoring import evaluate
from qatune.models.loading import load_model


@pytest.fixture(scope="module")
def answerer(tiny_bert):
    return Answerer(str(tiny_bert), WindowConfig(64, 16, 16))


def test_long_context_spans_many_windows(answerer):
    context = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(80))
    answers = answerer.ask(context, "Which topic?", top_k=5)
    assert len(answers) == 5
    assert len({a.text for a in answers}) == 5
    assert all(context[a.start : a.end] == a.text for a in answers)
    assert sum(a.probability for a in answers) <= 1 + 1e-9
    assert max(a.start for a in answers) >= 0


def test_batch_equals_single(answerer):
    pairs = [("Paris is the capital of France.", "What is the capital?"), ("Cats sleep a lot.", "Who sleeps?")]
    batch = answerer.ask_many(pairs, top_k=2)
    for (context, question), answers in zip(pairs, batch):
        single = answerer.ask(context, question, top_k=2)
        assert [a.text for a in single] == [a.text for a in answers]
        assert single[0].probability == pytest.approx(answers[0].probability, rel=1e-4)


def test_unicode_context(answerer):
    context = "Zoë visited 東京 in 2019 🎉 and met José."
    for a in answerer.ask(context, "Where did Zoë go?", top_k=3):
        assert context[a.start : a.end] == a.text


def test_empty_inputs_are_rejected(answerer):
    with pytest.raises(DataError, match="empty context"):
        answerer.ask("  ", "Why?")
    with pytest.raises(DataError, match="empty question"):
        answerer.ask("Text.", "")
    with pytest.raises(DataError, match="context is not valid text at character 5"):
        answerer.ask("Text.\udcff", "Why?")  # an undecodable byte read from stdin, or a JSON escape


def test_untuned_head_is_seeded(tiny_bert):
    a = load_model(str(tiny_bert), seed=7).model.qa_outputs.weight
    b = load_model(str(tiny_bert), seed=7).model.qa_outputs.weight
    c = load_model(str(tiny_bert), seed=8).model.qa_outputs.weight
    assert (a == b).all() and not (a == c).all()


def test_evaluate_reports_speed_and_loss(tiny_bert):
    result = evaluate(Answerer(load_model(str(tiny_bert)), WindowConfig()), load_data("sample:validation"))
    m = result.metrics
    assert m["total"] == len(result.predictions) == 34
    assert m["questions_per_second"] > 0 and m["eval_loss"] > 0


def test_public_api_is_reexported():
    import qatune
    import qatune.training.trainer  # noqa: F401  (the submodule must not shadow the function)
    from qatune.training.trainer import train

    assert qatune.fine_tune is train
    assert qatune.Answerer is Answerer and qatune.evaluate is evaluate
    assert callable(qatune.load_data) and callable(qatune.squad_scores)


def test_bfloat16_inference_agrees_with_float32(tiny_bert):
    import torch

    from qatune.errors import ModelError

    data = load_data("sample:validation")
    fp32 = evaluate(Answerer(load_model(str(tiny_bert)), WindowConfig()), data)
    loaded = load_model(str(tiny_bert), dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in loaded.model.parameters())
    bf16 = evaluate(Answerer(loaded, WindowConfig()), data)
    same = sum(bf16.predictions[k] == v for k, v in fp32.predictions.items())
    assert same >= 0.8 * len(fp32.predictions), (same, len(fp32.predictions))
    assert bf16.metrics["eval_loss"] == pytest.approx(fp32.metrics["eval_loss"], rel=0.02)
    with pytest.raises(ModelError, match="dtype must be one of float32, bfloat16"):
        load_model(str(tiny_bert), dtype="float16")


def test_item_attention_is_the_same_function_as_eager_attention(tiny_bert):
    """qatune's CPU attention (one batch item at a time, queries scaled) gives eager attention's logits,
    padding masked alike, and the model's kernel is restored after."""
    import torch

    from qatune.models.attention import ITEM_ATTENTION, _register, attention

    _register()
    model = load_model(str(tiny_bert)).model
    batch = {"input_ids": torch.randint(5, 1000, (3, 16)), "attention_mask": torch.ones(3, 16, dtype=torch.long)}
    batch["attention_mask"][1, 9:] = 0
    batch["attention_mask"][2, 4:] = 0
    with torch.no_grad():
        with attention(model, "eager"):
            eager = model(**batch)
        with attention(model, ITEM_ATTENTION):
            assert model.config._attn_implementation == ITEM_ATTENTION
            mine = model(**batch)
    assert model.config._attn_implementation == "sdpa"
    assert torch.allclose(eager.start_logits, mine.start_logits, atol=1e-5)
    assert torch.allclose(eager.end_logits, mine.end_logits, atol=1e-5)
    grads = []
    for kernel in ("eager", ITEM_ATTENTION):  # differentiable, with eager attention's gradients
        model.zero_grad()
        with attention(model, kernel):
            model(**batch).start_logits.sum().backward()
        grads.append(model.bert.encoder.layer[0].attention.self.query.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_bf16_cpu_inference_answers_with_item_attention(tiny_bert, monkeypatch):
    """bfloat16 weights on a CPU answer through `item_attention`, float32 through the model's own
    kernel; the bf16 answers match the model's own kernel's, and the model keeps its kernel after."""
    import torch

    import qatune.answering.torch_backend as inference
    import qatune.models.attention

    bf16 = load_model(str(tiny_bert), dtype="bfloat16")
    assert inference.inference_attention(bf16.model) == qatune.models.attention.ITEM_ATTENTION
    assert inference.inference_attention(load_model(str(tiny_bert)).model) is None
    calls: list[int] = []
    real = qatune.models.attention.item_attention
    monkeypatch.setattr(qatune.models.attention, "item_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    answerer = Answerer(bf16)
    context, question = "Paris is the capital of France.", "What is the capital?"
    mine = answerer.ask(context, question, top_k=2)
    assert calls  # the pass went through it
    assert bf16.model.config._attn_implementation == "sdpa"
    monkeypatch.setattr(inference, "inference_attention", lambda model: None)
    own = answerer.ask(context, question, top_k=2)
    assert [a.text for a in mine] == [a.text for a in own]
    assert torch.tensor([a.probability for a in mine]).allclose(torch.tensor([a.probability for a in own]), atol=0.02)

"""Shared fixtures: tiny BERT- and RoBERTa-style models built in code, small data files, real SQuAD paths."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

pytest_plugins = ["documents.docfiles"]  # the document files of tests/documents (docs, texts, make_pdf)

if TYPE_CHECKING:
    from qatune.training.config import TrainConfig

SQUAD_DIR = Path(os.environ.get("QATUNE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "squad")


def squad_file(name: str) -> Path:
    path = SQUAD_DIR / name
    if not path.exists():
        pytest.skip(f"real SQuAD not found at {path} (set QATUNE_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def squad_dir() -> Path:
    squad_file("dev-v1.1.json.gz")
    return SQUAD_DIR


@pytest.fixture(scope="session")
def sample_contexts() -> list[str]:
    from qatune.data.sources import sample_path

    doc = json.loads(sample_path().read_text())
    return [p["context"] for a in doc["data"] for p in a["paragraphs"]]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT encoder (no QA head) with the default model's uncased WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from qatune.models.loading import default_model_path

    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def roberta_tokenizer(tmp_path_factory, sample_contexts):
    """A byte-level BPE tokenizer trained in code, RoBERTa-style (<s> q </s></s> c </s>, no token_type_ids)."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=True, trim_offsets=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(sample_contexts * 2, vocab_size=800, min_frequency=1, special_tokens=specials)
    bpe.post_processor = processors.RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")), trim_offsets=True, add_prefix_space=True
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_input_names=["input_ids", "attention_mask"],
    )


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory, roberta_tokenizer) -> Path:
    """A 2-layer RoBERTa encoder built in code with the BPE tokenizer above."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    out = tmp_path_factory.mktemp("tiny-roberta")
    roberta_tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(roberta_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=roberta_tokenizer.pad_token_id,
        type_vocab_size=1,
    )
    RobertaModel(config).save_pretrained(out, safe_serialization=True)
    return out


def write_squad(path: Path, articles: list[dict]) -> Path:
    path.write_text(json.dumps({"data": articles, "version": "1.1"}))
    return path


def article(context: str, qas: list[tuple[str, str, str, int | None]], title: str = "T") -> dict:
    """A SQuAD article with one paragraph; each qa is (id, question, answer, answer_start or None to find it)."""
    rows = []
    for qid, question, answer, start in qas:
        start = context.find(answer) if start is None else start
        rows.append({"id": qid, "question": question, "answers": [{"text": answer, "answer_start": start}]})
    return {"title": title, "paragraphs": [{"context": context, "qas": rows}]}


@pytest.fixture
def copy_model(tmp_path):
    def copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return copy


def tiny_config(model, out, **overrides) -> TrainConfig:
    """A training config that fine-tunes a tiny model in seconds (tests/training, tests/sweep, trackers)."""
    from qatune.training.config import TrainConfig

    values = dict(
        model=str(model),
        train_data="sample",
        eval_data="sample:validation",
        output_dir=str(out),
        train_limit=40,
        eval_limit=12,
        max_steps=6,
        train_batch_size=8,
        micro_batch_size=4,
        eval_steps=2,
        save_steps=2,
        logging_steps=1,
        max_seq_length=96,
        doc_stride=32,
        max_query_length=24,
        learning_rate=1e-3,
        seed=3,
        precision="fp32",  # the same on every CPU; bf16 and auto are tested on their own
        calibration_questions=0,  # tested on its own
    )
    values.update(overrides)
    return TrainConfig(**values)


BASE = {
    "train_data": "sample",
    "eval_data": "sample:validation",
    "eval_sample": 20,
    "max_steps": 6,
    "eval_steps": 2,
    "max_seq_length": 128,
    "doc_stride": 32,
    "micro_batch_size": 8,
}


def write_config(path: Path, model: Path, **changes) -> Path:
    config = {
        "method": "random",
        "metric": {"name": "f1", "goal": "maximize"},
        "parameters": {
            "learning_rate": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
            "train_batch_size": {"values": [8, 16]},
        },
        "run_cap": 3,
        "base": {**BASE, "model": str(model)},
    }
    for key, value in changes.items():
        if key == "base":
            config["base"].update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config))
    return path

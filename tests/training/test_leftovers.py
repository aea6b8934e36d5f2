"""Leftovers after kill -9 (issue 25 item 10): qatune names its temporaries so it recognises them
(`layout.temp_prefix`), and the next run removes its own from the folders it owns, and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_config
from qatune.layout import TEMP_PREFIX, is_temp_name, temp_prefix
from qatune.paths import remove_leftovers, temp_folder

# What a user may keep beside qatune's files under names close to its temporaries': never removed.
FOREIGN = (
    f"{TEMP_PREFIX}notes.txt",  # no random part
    f"{TEMP_PREFIX}model.ABCDEFGH",  # not what tempfile makes
    f"mine{TEMP_PREFIX}model.abcd1234",
    ".tmpAbC123",  # a safetensors partial that was not in a qatune temporary folder: not known to be qatune's
    ".tmp-model-backup",
)

KILL_AT_FINAL_SAVE = """
import json, os, signal, sys
from pathlib import Path

import transformers.modeling_utils

def killed(tensors, filename, metadata=None):  # safetensors' own partial temporary, then kill -9
    Path(filename).with_name(".tmpAbC123").write_bytes(b"half of the weights")
    os.kill(os.getpid(), signal.SIGKILL)

transformers.modeling_utils.safe_save_file = killed
from qatune.training.config import TrainConfig
from qatune.training.trainer import train

train(TrainConfig.from_dict(json.loads(sys.argv[1])), progress_bar=False)
"""

KILL_AT_QUANTIZE = """
import os, signal, sys
from pathlib import Path

import onnxruntime.quantization

def killed(model_input, model_output, **options):
    Path(model_output).write_bytes(b"half of the int8 graph")
    os.kill(os.getpid(), signal.SIGKILL)

onnxruntime.quantization.quantize_dynamic = killed
from qatune.publishing.export import export_onnx

export_onnx(sys.argv[1], sys.argv[2], quantize=True)
"""


def _killed(script: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]


def _foreign(folder: Path) -> None:
    for name in FOREIGN:
        (folder / name).write_text("the user's")


def test_names_of_temporaries():
    prefix = temp_prefix("model.safetensors")
    assert is_temp_name(prefix + "k2_9abcd") and is_temp_name(prefix + "k2_9abcd", "model.safetensors")
    assert not is_temp_name(prefix + "k2_9abcd", "model")
    assert not any(is_temp_name(name) for name in FOREIGN)
    assert len(os.fsencode(temp_prefix("é" * 300))) < 200  # a long name still makes a valid file name


def test_only_qatunes_own_unheld_temporaries_are_removed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    owned = tmp_path / "run"
    owned.mkdir()
    _foreign(owned)
    (owned / f"{temp_prefix('qatune.json')}a1b2c3d4").write_text("{")
    (owned / f"{temp_prefix('model')}zzzz9999").mkdir()
    (owned / f"{temp_prefix('model')}zzzz9999" / ".tmpAbC123").write_text("partial")
    (owned / f"{temp_prefix('model')}link0000").symlink_to(outside)  # a link: never followed, never removed
    with temp_folder(owned / "model") as held:  # another process writing it now (its lock is held)
        removed = remove_leftovers(owned)
        assert held.is_dir()
    assert sorted(p.name for p in removed) == [
        f"{temp_prefix('model')}zzzz9999",
        f"{temp_prefix('qatune.json')}a1b2c3d4",
    ]
    assert sorted(p.name for p in owned.iterdir()) == sorted([*FOREIGN, f"{temp_prefix('model')}link0000"])
    assert (outside / "precious").read_text() == "keep"


def test_a_train_killed_at_the_final_save_leaves_nothing_after_the_rerun(tiny_bert, tmp_path):
    from qatune.models.loading import load_model
    from qatune.training.trainer import train

    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, max_steps=2, eval_steps=2, save_steps=2, eval_limit=4)
    _killed(KILL_AT_FINAL_SAVE, json.dumps(config.to_dict()))
    left = [p for p in out.rglob("*") if is_temp_name(p.name)]
    assert left and any((p / ".tmpAbC123").exists() for p in left)  # what the kill left, in a qatune temporary
    _foreign(out)
    summary = train(config, progress_bar=False)
    assert summary is not None and summary.steps == 2
    assert not [p for p in out.rglob("*") if is_temp_name(p.name)]
    assert not (out / ".tmpAbC123").exists() or (out / ".tmpAbC123").read_text() == "the user's"
    assert all((out / name).read_text() == "the user's" for name in FOREIGN)
    assert not load_model(str(out)).fresh_head


def test_a_killed_checkpoint_save_is_removed_by_the_next_one(tmp_path):
    from qatune.training.checkpoint import Progress, latest_checkpoint, save_checkpoint

    class Accelerator:
        def save_state(self, folder: str) -> None:
            (Path(folder) / "model.safetensors").write_text("state")

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / f"{temp_prefix('step-4')}q1w2e3r4").mkdir()  # killed while saving step 4
    (folder / ".tmp-step-2").mkdir()  # the name qatune gave it before
    _foreign(folder)
    save_checkpoint(Accelerator(), tmp_path, Progress(step=6))
    assert latest_checkpoint(tmp_path) == folder / "step-6"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FOREIGN, "step-6"])
    assert sorted(p.name for p in (folder / "step-6").iterdir()) == ["model.safetensors", "progress.json"]


@pytest.mark.parametrize("earlier", [False, True])
def test_a_killed_export_is_cleaned_by_the_next_export_to_that_folder(tiny_bert, tmp_path, earlier):
    from qatune.answering.onnx_backend import OnnxAnswerer
    from qatune.layout import ONNX_META
    from qatune.publishing.export import export_onnx

    out = tmp_path / "onnx"
    if earlier:
        out.mkdir()
        (out / ONNX_META).write_text("{}")
    _killed(KILL_AT_QUANTIZE, str(tiny_bert), str(out))
    beside = sorted(p.name for p in tmp_path.iterdir())
    assert any(is_temp_name(name, "onnx") for name in beside), beside
    other = tmp_path / f"{temp_prefix('other')}abcd1234"  # another target's: not this export's to remove
    other.mkdir()
    _foreign(tmp_path)
    export_onnx(str(tiny_bert), out)
    assert OnnxAnswerer(out).session is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*FOREIGN, "onnx", other.name])

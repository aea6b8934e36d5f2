"""Run under torchrun by test_distributed.py: fine-tune a tiny model, then each rank saves its weights."""

import sys

import torch.distributed as dist
from safetensors.torch import save_file

from qatune.models.loading import load_model
from qatune.training.config import TrainConfig
from qatune.training.trainer import train

model_dir, out = sys.argv[1], sys.argv[2]
config = TrainConfig(
    model=model_dir,
    train_data="sample",
    eval_data="sample:validation",
    output_dir=out,
    train_limit=32,
    calibration_questions=0,
    eval_limit=8,
    max_steps=4,
    train_batch_size=4,
    micro_batch_size=4,
    eval_steps=2,
    logging_steps=1,
    max_seq_length=96,
    doc_stride=32,
    max_query_length=24,
    learning_rate=1e-3,
    seed=5,
    eval_at_start=False,
)
loaded = load_model(model_dir, seed=config.seed)
train(config, loaded=loaded, progress_bar=False)
rank = dist.get_rank() if dist.is_initialized() else 0
state = {k: v.detach().contiguous().clone() for k, v in loaded.model.state_dict().items()}
save_file(state, f"{out}/rank{rank}.safetensors")

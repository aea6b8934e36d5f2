"""Optional W&B logging of sweep trials, for users who keep their dashboards there.

Each trial becomes one W&B run (grouped by sweep name) with its settings as config and every
evaluation as a logged step. WANDB_MODE=offline works as W&B documents it (runs stay on disk).
"""

from __future__ import annotations

from typing import Any

from qatune.errors import ConfigError
from qatune.sweep.spec import SweepSpec

LOGGED = ("train_loss", "eval_loss", "exact_match", "f1", "correct", "similar", "incorrect")


class WandbLogger:
    def __init__(self, sweep_name: str, spec: SweepSpec) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError("--wandb needs the wandb package: pip install wandb (or drop --wandb)") from None
        self.wandb, self.sweep_name, self.spec = wandb, sweep_name, spec
        self.runs: dict[int, Any] = {}

    def start(self, number: int, values: dict[str, Any]) -> None:
        self.runs[number] = self.wandb.init(
            project=self.spec.project or "qatune",
            group=self.sweep_name,
            name=f"{self.sweep_name}-trial-{number}",
            reinit="create_new",
            config={**self.spec.base, **values},
            job_type="sweep-trial",
        )

    def log(self, number: int, records: list[dict[str, Any]]) -> None:
        run = self.runs.get(number)
        for record in records:
            if run is not None:
                run.log({k: record[k] for k in LOGGED if record.get(k) is not None}, step=record["step"])

    def finish(self, number: int, state: str) -> None:
        run = self.runs.pop(number, None)
        if run is not None:
            run.summary["state"] = state
            run.finish(exit_code=0 if state in ("complete", "pruned") else 1)

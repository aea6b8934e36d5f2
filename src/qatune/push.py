"""`qatune push`: upload a model folder (or an ONNX export) to the Hugging Face Hub with huggingface_hub.

The token comes from where huggingface_hub looks (HF_TOKEN, `hf auth login`'s cache). Checkpoints and
temporary files stay behind; everything else of the folder (weights, tokenizer, model card,
qatune.json, calibration.json, metrics.jsonl) is uploaded in one commit.
"""

from __future__ import annotations

from pathlib import Path

from qatune.errors import ConfigError, ModelError
from qatune.layout import CHECKPOINTS, ONNX_MODEL
from qatune.sources import hub_reachable

SKIPPED = [f"{CHECKPOINTS}/*", ".*", "*.tmp"]


def check_push(folder: str | Path, repo_id: str) -> Path:
    """Refuse before any network: a repo id the Hub would refuse, or a folder that is not a model."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"{folder}: not a folder; give a model folder (qatune train --output, qatune export)")
    if not ((path / "config.json").is_file() and any(path.glob("*.safetensors"))) and not (path / ONNX_MODEL).is_file():
        raise ModelError(f"{folder}: no model here (config.json and *.safetensors, or {ONNX_MODEL}); nothing to push")
    if repo_id.count("/") != 1:
        raise ConfigError(f"--repo-id {repo_id!r}: give USER/NAME (or ORGANISATION/NAME)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"--repo-id {repo_id!r}: {str(exc).splitlines()[0]}") from None
    return path


def push(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Create the repository if needed and upload the folder; returns the commit URL."""
    path = check_push(folder, repo_id)
    if not hub_reachable():
        raise ConfigError("cannot reach the Hugging Face Hub (huggingface.co:443); push when you are online")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=path, ignore_patterns=SKIPPED, commit_message=f"Upload {path.name} with qatune"
        )
    except LocalTokenNotFoundError:
        raise ConfigError("no Hugging Face token: run `hf auth login` or set HF_TOKEN") from None
    except HfHubHTTPError as exc:
        raise ConfigError(f"the Hub refused the upload to {repo_id}: {str(exc).splitlines()[0]}") from None
    return str(commit.commit_url) if hasattr(commit, "commit_url") else str(commit)

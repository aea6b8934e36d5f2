"""`qatune push`: upload a model folder (or an ONNX export) to the Hugging Face Hub with huggingface_hub.

The token comes from where huggingface_hub looks (HF_TOKEN, `hf auth login`'s cache). Only the files a
model folder is made of go up, in one commit: weights, config, tokenizer, model card, qatune.json,
calibration.json, metrics.jsonl, TensorBoard events, or an export's model.onnx and settings. Anything
else in the folder (a user's notes, an .env, checkpoints) stays behind, and is named; a model file that
links out of the folder is refused (`push_files`).
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from qatune.data.sources import hub_reachable
from qatune.errors import ConfigError, ModelError
from qatune.layout import CALIBRATION_FILE, CARD_FILE, CONFIG_FILE, HISTORY_FILE, ONNX_META, ONNX_MODEL

logger = logging.getLogger(__name__)

# What qatune, transformers and tokenizers write to a model or export folder (an allow-list: a folder
# the user shares with other files must not leak them to the Hub).
MODEL_FILES = (
    "*.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",  # sentencepiece
    CARD_FILE,
    CONFIG_FILE,
    CALIBRATION_FILE,
    HISTORY_FILE,
    ONNX_MODEL,
    ONNX_META,
    "tensorboard/*",
)


def push_files(folder: Path) -> tuple[list[str], list[str]]:
    """The folder's files that go up (MODEL_FILES) and those that stay, as paths relative to it.

    Links are followed only inside the folder: a model file whose real path is outside it (`vocab.txt ->
    ~/.ssh/id_rsa`) is a ConfigError naming it, so nothing from outside goes up under an allowed name. A
    linked folder is not entered (it stays, named with a trailing /); only regular files go up.
    """
    root = folder.resolve()
    sent: list[str] = []
    kept: list[str] = []
    for name, path in sorted(_entries(folder)):
        hidden = any(part.startswith(".") for part in Path(name).parts)
        if hidden or name.endswith("/") or not any(fnmatch.fnmatchcase(name, p) for p in MODEL_FILES):
            kept.append(name)
            continue
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a loop of links: nothing to read
            kept.append(name)
            continue
        if not real.is_relative_to(root):
            raise ConfigError(
                f"{path}: a link to {real}, outside the folder; qatune push uploads only files inside "
                f"{folder}: replace the link with a copy of the file, or remove it"
            )
        (sent if real.is_file() else kept).append(name)  # a broken link, a FIFO or socket stays
    return sent, kept


def _entries(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every entry below `folder` as (relative name, path), without entering linked folders."""
    for parent, dirs, files in os.walk(folder, followlinks=False):
        base = Path(parent)
        for name in files:
            yield (base / name).relative_to(folder).as_posix(), base / name
        for name in dirs:
            if (base / name).is_symlink():
                yield (base / name).relative_to(folder).as_posix() + "/", base / name


def check_push(folder: str | Path, repo_id: str) -> Path:
    """Refuse before any network: a repo id the Hub would refuse, or a folder that is not a model."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id  # type: ignore[attr-defined]

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
    sent, kept = push_files(path)  # a link out of the folder is refused offline, before any network
    if not hub_reachable():
        raise ConfigError("cannot reach the Hugging Face Hub (huggingface.co:443); push when you are online")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    if kept:
        shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
        logger.info("left out (not model files, linked folders, or not regular files): %s", shown)
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=path,
            allow_patterns=[glob.escape(name) for name in sent],  # exact names, even with [ or * in them
            commit_message=f"Upload {path.name} with qatune",
        )
    except LocalTokenNotFoundError:
        raise ConfigError("no Hugging Face token: run `hf auth login` or set HF_TOKEN") from None
    except HfHubHTTPError as exc:
        raise ConfigError(f"the Hub refused the upload to {repo_id}: {str(exc).splitlines()[0]}") from None
    return str(commit.commit_url) if hasattr(commit, "commit_url") else str(commit)

"""Self-describing checkpoints: written atomically, read back with weights_only=True and checked."""
import os
import tempfile
import warnings
from pathlib import Path

import torch

from utils.errors import CheckpointError

FORMAT = "surname-classifier/1"
REQUIRED_KEYS = ("model_state", "model_args", "alphabet", "countries", "epoch", "metrics", "config", "split")


def save_checkpoint(payload: dict, path: str | Path) -> Path:
    """torch.save to a temp file beside `path`, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict; CheckpointError if it is missing, corrupt or not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; run `python train.py` first")
    try:
        with warnings.catch_warnings():  # torch warns before failing on a foreign pickle; the error says enough
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load fails in many ways on a damaged or foreign file; all mean "unreadable"
        raise CheckpointError(f"{path}: not a readable checkpoint ({_reason(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a surname-classifier checkpoint")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return payload


def _reason(error: Exception) -> str:
    text = str(error).strip()
    if text.startswith("Weights only load failed"):
        return "it holds Python objects, not just tensors and plain data"
    first = text.splitlines()[0][:100] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__

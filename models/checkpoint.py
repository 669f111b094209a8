"""The checkpoint format: what a trained model is on disk, and the only code that writes or reads it.

A checkpoint is a dict that torch.load reads with weights_only=True (tensors and plain data only):

    format        "surname-classifier/2"
    family        a key of models.FAMILIES: "gru", "ngram", ...
    model_args    the family's args as a dict; sizes from the data
    model_state   the module's state_dict (weights, or counts)
    alphabet      the letters the model reads; anything else is the unknown slot
    countries     the label list, index = output position
    train_prior   each country's share of the training rows
    assumed_prior (optional) the class mix the probabilities assume, after the post-hoc adjustment
                  (absent: train_prior)
    logit_offset  added to the logits when predicting (class-mix correction), [n_countries]
    temperature   the logits are divided by it (fitted on validation at the end of training; 1.0: uncalibrated)
    seen          (optional) each training name with the countries the data files it under
    data          the split's record: data file name, sha256, seed, fractions (utils.data.SurnameData.record)
    config        the resolved training config
    epoch, metrics, finished   where the run was; `finished` is set once the test score is in
    resume        (epoch checkpoints only) optimizer, scheduler, RNG and history to continue the run

Checkpoints are written to a temp file and renamed, so a reader never sees half a file.
"""
import math
import os
import time
import warnings
from pathlib import Path

import torch

from config.config import SAVE_DIR
from models import FAMILIES
from models import build_model as build_family
from utils import files
from utils.errors import CheckpointError

FORMAT = "surname-classifier/2"
BEST_SUFFIX = "_classification_best.bin"
RESUME_SUFFIX = "_resume.bin"
REQUIRED = {"family": str, "model_args": dict, "model_state": dict, "alphabet": str, "countries": list,
            "train_prior": list, "logit_offset": list, "temperature": float, "data": dict, "config": dict}
DATA_RECORD = {"file": str, "sha256": str, "seed": int, "val_fraction": float, "test_fraction": float}
MAX_MEMBERS = 16  # models in one mix (train.py trains each family at most once: 5)
MAX_SIZE_ARG = 1 << 16  # no integer size in a family's args is larger (hidden size, layers, orders, table sizes)


RUNS = "runs"  # <save_dir>/runs/<run>/: a training run's own files (epochs, best so far, resume), until it finishes
LATEST = "latest"  # <save_dir>/latest: the file name of the newest finished run's best checkpoint, one line


def best_path(save_dir: str | Path, family: str) -> Path:
    return Path(save_dir) / f"{family}{BEST_SUFFIX}"


def epoch_path(save_dir: str | Path, family: str, epoch: int) -> Path:
    return Path(save_dir) / f"{family}_classification_{epoch}.bin"


def resume_path(run_dir: str | Path, family: str) -> Path:
    """Where an interrupted run keeps what --resume needs to continue training `family`."""
    return Path(run_dir) / f"{family}{RESUME_SUFFIX}"


def history_path(save_dir: str | Path, model: str) -> Path:
    """A finished run's history: every epoch's numbers, the test score, the config (JSON)."""
    return Path(save_dir) / f"{model}_history.json"


def curves_path(save_dir: str | Path, model: str) -> Path:
    """A run's training curves (PNG)."""
    return Path(save_dir) / f"{model}_curves.png"


def write_atomic(path: str | Path, write) -> Path:
    """Call write(binary file) on a temp file beside `path`, then rename it to `path`: a reader sees the old
    file or the new one, never half of one, and the temp file never outlives a failure. Every file a run
    writes (checkpoints, histories, reports) goes through here; only a regular file is ever replaced, and a
    file that cannot be written is one line (utils.files)."""
    return files.write_atomic(path, write)


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def save(payload: dict, path: str | Path) -> Path:
    """torch.save of the payload, atomically."""
    return write_atomic(path, lambda f: torch.save({"format": FORMAT, **payload}, f))


def load(path: str | Path) -> dict:
    """The checkpoint's dict, checked field by field; CheckpointError if missing, corrupt or not one of ours."""
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
        raise CheckpointError(f"{path}: not a surname-classifier checkpoint (format {FORMAT})")
    validate(payload, path)
    return payload


def validate(payload: dict, source) -> None:
    """Types and ranges of every field, before anything is allocated from them."""
    def bad(what: str):
        raise CheckpointError(f"{source}: {what}")

    for key, kind in REQUIRED.items():
        if key not in payload:
            bad(f"checkpoint lacks {key}")
        if not isinstance(payload[key], kind) or isinstance(payload[key], bool):
            bad(f"{key} is a {type(payload[key]).__name__}, not a {kind.__name__}")
    if payload["family"] not in FAMILIES:
        bad(f"unknown model family {payload['family']!r}")
    countries, alphabet = payload["countries"], payload["alphabet"]
    if len(countries) < 2 or not all(isinstance(c, str) and c for c in countries) or len(set(countries)) != len(countries):
        bad("countries must be two or more distinct names")
    if not alphabet or len(set(alphabet)) != len(alphabet):
        bad("the alphabet must be distinct letters")
    for key in ("train_prior", "logit_offset", "assumed_prior"):
        values = payload.get(key, payload["train_prior"])
        if not isinstance(values, list):
            bad(f"{key} is not a list")
        if len(values) != len(countries) or not all(isinstance(v, float) and math.isfinite(v) for v in values):
            bad(f"{key} must be {len(countries)} finite numbers")
    if not (math.isfinite(payload["temperature"]) and payload["temperature"] > 0):
        bad("temperature must be a positive number")
    seen = payload.get("seen", {})
    if not isinstance(seen, dict) or not all(isinstance(v, list) and all(c in countries for c in v) for v in seen.values()):
        bad("seen must map names to lists of its countries")
    for key, kind in DATA_RECORD.items():
        if not isinstance(payload["data"].get(key), kind):
            bad(f"the data record lacks {key} (a {kind.__name__})")
    args = payload["model_args"]
    if args.get("n_letters") != len(alphabet) + 1 or args.get("n_countries") != len(countries):
        bad("model sizes do not match its alphabet or country list")
    if payload["family"] == "mix":  # before a member is built: a crafted list could hold a hundred thousand
        members, weights = args.get("members"), args.get("weights")
        if not isinstance(members, list) or not 2 <= len(members) <= MAX_MEMBERS or not isinstance(weights, list) \
                or len(weights) != len(members):
            bad(f"a mix holds 2 to {MAX_MEMBERS} members, each with a weight")
        if not all(isinstance(m, dict) and m.get("family") in FAMILIES and m["family"] != "mix"
                   and isinstance(m.get("args"), dict) for m in members):
            bad("a mix member must be a family and its args")
        if not all(isinstance(w, float) and math.isfinite(w) for w in weights):
            bad("a mix's weights must be finite numbers")
    for name, value in args.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and not 0 <= value <= MAX_SIZE_ARG:
            bad(f"model_args {name}={value} is out of range")
        if isinstance(value, float) and not math.isfinite(value):
            bad(f"model_args {name} is not finite")
    for name, tensor in payload["model_state"].items():
        if not isinstance(tensor, torch.Tensor):
            bad(f"model_state {name} is not a tensor")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad(f"weights {name} hold NaN or infinite values")


def build_model(payload: dict, source="checkpoint") -> torch.nn.Module:
    """The model a checkpoint describes, with its weights, in eval mode; CheckpointError if they do not fit.

    The module is first built on the meta device (no memory), so sizes that do not match the stored
    weights are refused before anything as large as they claim is allocated. A buffer that is empty
    when built (a counted family's tables) takes the size the stored one has.
    """
    try:
        with torch.device("meta"):
            shapes = {k: v.shape for k, v in build_family(payload["family"], payload["model_args"]).state_dict().items()}
        stored = {k: v.shape for k, v in payload["model_state"].items()}
        differ = sorted(set(shapes) ^ set(stored)) or [k for k in shapes if shapes[k] != stored[k] and shapes[k].numel()]
        if differ:
            raise ValueError(f"{differ[0]} differs")
        model = build_family(payload["family"], payload["model_args"])
        model.load_state_dict(payload["model_state"])
    except (TypeError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0][:160]
        raise CheckpointError(f"{source}: weights do not match the model they describe ({reason})") from None
    return model.eval()


def new_run_dir(save_dir: str | Path, model: str) -> Path:
    """A folder of its own for a new training run, <save_dir>/runs/<model>-<date>-<time>[-n]: its epoch, best-so-far
    and resume files live there, so nothing a finished run published is touched until this run finishes."""
    runs = Path(save_dir) / RUNS
    stem = f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1000):
        folder = runs / (stem if n == 0 else f"{stem}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
        except OSError as e:
            raise files.cannot_write(folder, e) from None
    raise CheckpointError(f"{runs}: no free run folder name for {stem}")


def resume_files(save_dir: str | Path) -> list[Path]:
    """Every <family>_resume.bin of an interrupted run in the save folder, oldest first (older layouts kept
    them in the save folder itself)."""
    save_dir = Path(save_dir)
    found = [*save_dir.glob(f"{RUNS}/*/*{RESUME_SUFFIX}"), *save_dir.glob(f"*{RESUME_SUFFIX}")]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def publish(save_dir: str | Path, model: str, payload: dict) -> Path:
    """Write a finished run's checkpoint as <save_dir>/<model>_classification_best.bin, then point
    <save_dir>/latest at it: the one step that makes it the default model."""
    if not payload.get("finished"):
        raise ValueError("only a finished run is published")
    path = save(payload, best_path(save_dir, model))
    write_text(Path(save_dir) / LATEST, path.name + "\n")
    return path


def default_checkpoint(save_dir: str | Path | None = None) -> Path:
    """The best checkpoint of the newest finished run: the one <save_dir>/latest names (CheckpointError if it is
    missing, damaged or unfinished), else, without a latest file naming a best file of the folder, the newest
    finished <model>_classification_best.bin (an interrupted run's is never the default). save_dir: SAVE_DIR
    unless given."""
    return load_default(save_dir)[0]


def load_default(save_dir: str | Path | None = None) -> tuple[Path, dict]:
    """default_checkpoint's path and its dict, each candidate read once (a caller that goes on to use the
    checkpoint need not read it again)."""
    save_dir = Path(SAVE_DIR if save_dir is None else save_dir)
    try:
        pointed = save_dir / (save_dir / LATEST).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        pointed = None
    if pointed is not None and pointed.name.endswith(BEST_SUFFIX) and pointed.parent == save_dir:
        # the published model, and no other: answering with an older one instead would be a silent wrong model
        try:
            payload = load(pointed)
        except CheckpointError as e:
            raise CheckpointError(f"{save_dir / LATEST} names {pointed.name}, which cannot be used ({e}); train "
                                  "again, or pass --checkpoint") from None
        if not payload.get("finished"):
            raise CheckpointError(f"{save_dir / LATEST} names {pointed.name}, which is from a run that had not "
                                  "finished; train again, or pass --checkpoint")
        return pointed, payload
    # no usable pointer (a save folder from before run folders): the newest finished best file
    newest_first = sorted(save_dir.glob(f"*{BEST_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in newest_first:
        try:
            payload = load(path)
            if payload.get("finished"):
                return path, payload
        except CheckpointError:
            continue
    raise CheckpointError(f"no finished training run in {save_dir}; run `python train.py` first")


def _reason(error: Exception) -> str:
    text = str(error).strip()
    if text.startswith("Weights only load failed"):
        return "it holds Python objects, not just tensors and plain data"
    first = text.splitlines()[0][:100] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class SaveDirLock:
    """One training run owns a save folder at a time: an flock on <save_dir>/.lock holding the owner's pid.

    The kernel drops the lock when the process dies, however it dies, so a stale lock file never
    blocks a later run. Taking the lock also removes temp files that a killed writer left behind.
    """

    def __init__(self, save_dir: str | Path):
        self.save_dir = Path(save_dir)
        self.file = None

    def __enter__(self) -> "SaveDirLock":
        import fcntl

        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            self.file = open(self.save_dir / ".lock", "a+")
        except OSError as e:
            raise CheckpointError(f"cannot write to {self.save_dir} ({e.strerror}); pass --save-dir") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            owner = self.file.read().strip() or "another process"
            self.file.close()
            raise CheckpointError(f"{self.save_dir} is in use by a training run ({owner}); wait for it to finish "
                                  "or pass another --save-dir") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()}\n")
        self.file.flush()
        for stale in [*self.save_dir.glob(".*.tmp"), *self.save_dir.glob(f"{RUNS}/*/.*.tmp")]:  # a killed writer's
            stale.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()  # releases the flock

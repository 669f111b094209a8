"""The model every script that runs one shares (predict.py, evaluate.py, spark_predict.py, serve.py): which
checkpoint files, each read once, and the Predictor built from them, with its class mix, device and threads.

    add_model_arguments(parser)            # utils/cli.py: --checkpoint, --prior, --device, --threads
    model = model_from_args(parser.parse_args())
    model.predictor.predict(["Nakamura"])  # model.paths, model.payloads: the files and what they hold
"""
import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from models import checkpoint as ckpt
from models.predictor import Predictor
from utils.class_mix import read_prior
from utils.training import pick_device


def read_checkpoints(paths: list[str | Path] | None) -> list[tuple[Path, dict]]:
    """(path, checked dict) of each checkpoint file, each read once; none given: the default one
    (models.checkpoint.default_checkpoint). CheckpointError if one is missing or damaged."""
    if not paths:
        return [ckpt.load_default()]
    return [(Path(path), ckpt.load(path)) for path in paths]


def warn_if_unfinished(path: Path, payload: dict) -> None:
    """A line on stderr when a checkpoint is an epoch, best-so-far or resume file of a run that had not finished."""
    if not payload.get("finished"):
        print(f"warning: {path} is from a run that had not finished (not calibrated, no test score); "
              "its answers may be poor", file=sys.stderr)


def set_threads(threads: int) -> None:
    """torch's CPU threads in this process (0: leave torch's choice)."""
    if threads:
        torch.set_num_threads(threads)


@dataclass
class Model:
    """The checkpoints a script runs and the Predictor made of them."""
    paths: list[Path]
    payloads: list[dict]  # each checkpoint's dict, as models.checkpoint.load gives it
    predictor: Predictor


def load_model(paths: list[str | Path] | None, device: str = "cpu", prior: str | None = "model",
               announce: bool = False) -> Model:
    """The Predictor of the checkpoints (the default one if none) on `device` (utils.training.pick_device's names),
    re-weighted to `prior` (utils.class_mix.read_prior's names or file; None: as the models assume). `announce`:
    say on stderr which files answer, once they are read."""
    device = str(pick_device(device))
    loaded = read_checkpoints(paths)
    if announce:
        print("model: " + " + ".join(str(path) for path, _ in loaded), file=sys.stderr)
        for path, payload in loaded:
            warn_if_unfinished(path, payload)
    predictor = Predictor.from_payloads(loaded, device=device)
    if prior is not None:
        predictor.set_prior(read_prior(prior, predictor.countries, predictor.members[0].train_prior))
    return Model([path for path, _ in loaded], [payload for _, payload in loaded], predictor)


def model_from_args(args: argparse.Namespace) -> Model:
    """The model add_model_arguments' flags ask for, with torch's threads set; which files, said on stderr."""
    set_threads(args.threads)
    return load_model(args.checkpoint, args.device, getattr(args, "prior", None), announce=True)

"""Classify names with a trained checkpoint: the Python API behind predict.py."""
from dataclasses import dataclass
from pathlib import Path

import torch

from models.classifier import ModelArgs, NameClassifier
from models.ensemble import Ensemble, build_model
from utils.checkpoint import load_checkpoint
from utils.dataset import encode_names
from utils.errors import CheckpointError
from utils.text import Alphabet, check_name


@dataclass
class Prediction:
    name: str  # as given
    normalised: str  # what the model read
    top: list[tuple[str, float]]  # (country, probability), best first
    unknown_chars: list[str]  # characters outside the alphabet, read as "unknown"

    @property
    def country(self) -> str:
        return self.top[0][0]


def model_from_checkpoint(checkpoint: dict, source: str | Path = "checkpoint") -> NameClassifier | Ensemble:
    """Rebuild the classifier (or ensemble) from the checkpoint alone; CheckpointError if the weights do not fit."""
    try:
        model = build_model(ModelArgs(**checkpoint["model_args"]), int(checkpoint.get("members", 1)))
        # checkpoints from before the class-mix correction have no offset: they predict without one
        offsets = {name: buffer for name, buffer in model.named_buffers() if name.endswith("logit_offset")}
        model.load_state_dict({**offsets, **checkpoint["model_state"]})
    except (TypeError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{source}: weights do not match the model they describe ({reason})") from None
    if model.args.n_letters != len(checkpoint["alphabet"]) + 1 or model.args.n_countries != len(checkpoint["countries"]):
        raise CheckpointError(f"{source}: model sizes do not match its alphabet or country list")
    return model


class Predictor:
    def __init__(self, model: NameClassifier | Ensemble, alphabet: Alphabet, countries: list[str], device: str = "cpu"):
        self.model = model.to(device).eval()
        self.alphabet, self.countries, self.device = alphabet, countries, device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        checkpoint = load_checkpoint(path)
        return cls(model_from_checkpoint(checkpoint, path), Alphabet(checkpoint["alphabet"]),
                   list(checkpoint["countries"]), device)

    @torch.inference_mode()
    def logits(self, normalised_names: list[str], batch_size: int = 4096) -> torch.Tensor:
        """Model outputs [N, n_countries] for already-normalised, non-empty names, in their order.

        Names are encoded in one tensor operation and run in batches of one length each, so the
        recurrent layer never needs packing; the result equals running the one-hot reference path.
        """
        letters, lengths = encode_names(normalised_names, self.alphabet)  # [N, T_max], [N]
        out = torch.empty(len(normalised_names), len(self.countries))
        order = torch.argsort(lengths, stable=True)  # [N]
        start = 0
        for length, count in zip(*(t.tolist() for t in torch.unique_consecutive(lengths[order], return_counts=True))):
            for rows in order[start:start + count].split(batch_size):
                batch = letters[rows, :length].to(self.device)  # [B, length]
                out[rows] = self.model(batch, lengths[rows]).float().cpu()
            start += count
        return out

    def probabilities(self, normalised_names: list[str], batch_size: int = 4096) -> torch.Tensor:
        """Softmax over countries, [N, n_countries], for already-normalised, non-empty names."""
        return torch.softmax(self.logits(normalised_names, batch_size), dim=1)

    def predict(self, names: list[str], topk: int = 1) -> list[Prediction]:
        """Top-k countries for each name; InvalidNameError for an empty or letter-less name."""
        normalised = [check_name(name) for name in names]
        if not normalised:
            return []
        probs = self.probabilities(normalised)
        best = probs.topk(min(topk, len(self.countries)), dim=1)
        # whole-tensor .tolist() once: iterating a tensor row by row costs microseconds per row
        values, indices = best.values.tolist(), best.indices.tolist()
        return [Prediction(name, norm, [(self.countries[i], p) for p, i in zip(row_values, row_indices)],
                           self.alphabet.unknown_chars(norm))
                for name, norm, row_values, row_indices in zip(names, normalised, values, indices)]

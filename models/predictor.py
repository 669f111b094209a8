"""Classify names with a trained checkpoint: the Python API behind predict.py."""
from dataclasses import dataclass
from pathlib import Path

import torch

from models.classifier import ModelArgs, NameClassifier
from utils.checkpoint import load_checkpoint
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


def model_from_checkpoint(checkpoint: dict, source: str | Path = "checkpoint") -> NameClassifier:
    """Rebuild the classifier from the checkpoint alone; CheckpointError if the weights do not fit."""
    try:
        model = NameClassifier(ModelArgs(**checkpoint["model_args"]))
        model.load_state_dict(checkpoint["model_state"])
    except (TypeError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{source}: weights do not match the model they describe ({reason})") from None
    if model.args.n_letters != len(checkpoint["alphabet"]) + 1 or model.args.n_countries != len(checkpoint["countries"]):
        raise CheckpointError(f"{source}: model sizes do not match its alphabet or country list")
    return model


class Predictor:
    def __init__(self, model: NameClassifier, alphabet: Alphabet, countries: list[str], device: str = "cpu"):
        self.model = model.to(device).eval()
        self.alphabet, self.countries, self.device = alphabet, countries, device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        checkpoint = load_checkpoint(path)
        return cls(model_from_checkpoint(checkpoint, path), Alphabet(checkpoint["alphabet"]),
                   list(checkpoint["countries"]), device)

    @torch.inference_mode()
    def probabilities(self, normalised_names: list[str], batch_size: int = 4096) -> torch.Tensor:
        """Softmax over countries, [N, n_countries], for already-normalised, non-empty names."""
        out = torch.empty(len(normalised_names), len(self.countries))
        # sorting by length makes most batches one length, which runs without packing
        order = sorted(range(len(normalised_names)), key=lambda i: len(normalised_names[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            encoded = [self.alphabet.encode(normalised_names[i]) for i in rows]
            lengths = torch.tensor([len(e) for e in encoded])  # [B]
            letters = torch.nn.utils.rnn.pad_sequence(encoded, batch_first=True).to(self.device)  # [B, T]
            out[rows] = torch.softmax(self.model(letters, lengths), dim=1).float().cpu()
        return out

    def predict(self, names: list[str], topk: int = 1) -> list[Prediction]:
        """Top-k countries for each name; InvalidNameError for an empty or letter-less name."""
        normalised = [check_name(name) for name in names]
        if not normalised:
            return []
        probs = self.probabilities(normalised)
        best = probs.topk(min(topk, len(self.countries)), dim=1)
        return [Prediction(name, norm, [(self.countries[i], p) for p, i in zip(values.tolist(), indices.tolist())],
                           self.alphabet.unknown_chars(norm))
                for name, norm, values, indices in zip(names, normalised, best.values, best.indices)]

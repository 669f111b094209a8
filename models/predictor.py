"""Classify names with one or more trained checkpoints: the Python API behind predict.py and evaluate.py.

    from models.predictor import Predictor
    predictor = Predictor.from_checkpoints(["save_model/gru_classification_best.bin"])
    predictor.predict(["Nakamura", "Müller"], topk=3)        # [Prediction(...), ...]

Several checkpoints (of any families, trained on the same countries) predict together with the mean
of their probabilities.
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from utils import checkpoint as ckpt
from utils.data import Alphabet, check_name
from utils.errors import CheckpointError


@dataclass
class Prediction:
    name: str  # as given
    normalised: str  # what the model read
    top: list[tuple[str, float]]  # (country, probability), best first
    unknown_chars: list[str]  # characters outside the alphabet, read as "unknown"

    @property
    def country(self) -> str:
        return self.top[0][0]


@dataclass
class Member:
    """One trained model and what turns its logits into probabilities."""
    model: torch.nn.Module
    alphabet: Alphabet
    offset: torch.Tensor  # [n_countries], added to the logits
    temperature: float  # the logits are divided by it
    path: str

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> tuple["Member", dict]:
        payload = ckpt.load(path)
        model = ckpt.build_model(payload, path).to(device)
        return cls(model, Alphabet(payload["alphabet"]), torch.tensor(payload["logit_offset"]),
                   payload["temperature"], str(path)), payload

    def log_probabilities(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits = self.model(letters, lengths).float().cpu() + self.offset  # [B, n_countries]
        return torch.log_softmax(logits / self.temperature, dim=1)


class Predictor:
    def __init__(self, members: list[Member], countries: list[str], device: str = "cpu"):
        if not members:
            raise ValueError("a predictor needs at least one model")
        self.members, self.countries, self.device = members, list(countries), device
        self.alphabet = members[0].alphabet  # for the unknown-character warning

    @classmethod
    def from_checkpoints(cls, paths: list[str | Path], device: str = "cpu") -> "Predictor":
        members, countries = [], None
        for path in paths:
            member, payload = Member.load(path, device)
            if countries is not None and payload["countries"] != countries:
                raise CheckpointError(f"{path}: its countries differ from those of {paths[0]}; "
                                      "only models of one country list can predict together")
            countries = payload["countries"]
            members.append(member)
        return cls(members, countries, device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        return cls.from_checkpoints([path], device)

    @torch.inference_mode()
    def log_probabilities(self, normalised_names: list[str], batch_size: int = 4096) -> torch.Tensor:
        """Log of the members' mean probability, [N, n_countries], for already-normalised, non-empty names.

        Names run in batches of one length each, so recurrent layers never need packing.
        """
        out = torch.empty(len(normalised_names), len(self.countries))
        if not normalised_names:
            return out
        member_log_probs = []
        for member in self.members:
            letters, lengths = member.alphabet.encode_many(normalised_names)  # [N, T_max], [N]
            member_out = torch.empty_like(out)
            order = torch.argsort(lengths, stable=True)  # [N]
            start = 0
            for length, count in zip(*(t.tolist() for t in torch.unique_consecutive(lengths[order], return_counts=True))):
                for rows in order[start:start + count].split(batch_size):
                    member_out[rows] = member.log_probabilities(letters[rows, :length].to(self.device), lengths[rows])
                start += count
            member_log_probs.append(member_out)
        if len(member_log_probs) == 1:
            return member_log_probs[0]
        stacked = torch.stack(member_log_probs)  # [M, N, n_countries]
        return torch.logsumexp(stacked, dim=0) - torch.log(torch.tensor(float(len(self.members))))

    def probabilities(self, normalised_names: list[str], batch_size: int = 4096) -> torch.Tensor:
        """[N, n_countries], each row summing to 1, for already-normalised, non-empty names."""
        return self.log_probabilities(normalised_names, batch_size).exp()

    def predict(self, names: list[str], topk: int = 1) -> list[Prediction]:
        """Top-k countries for each name; InvalidNameError for an empty, letter-less or too long name."""
        normalised = [check_name(name) for name in names]
        if not normalised:
            return []
        best = self.probabilities(normalised).topk(min(topk, len(self.countries)), dim=1)
        # whole-tensor .tolist() once: iterating a tensor row by row costs microseconds per row
        values, indices = best.values.tolist(), best.indices.tolist()
        return [Prediction(name, norm, [(self.countries[i], p) for p, i in zip(row_values, row_indices)],
                           self.alphabet.unknown_chars(norm))
                for name, norm, row_values, row_indices in zip(names, normalised, values, indices)]

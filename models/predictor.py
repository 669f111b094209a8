"""Classify names with one or more trained checkpoints: the Python API behind predict.py and evaluate.py.

    from models.predictor import Predictor
    predictor = Predictor.from_checkpoints(["save_model/gru_classification_best.bin"])
    predictor.predict(["Nakamura", "Müller"], topk=3)        # [Prediction(...), ...]

Several checkpoints (of any families, trained on the same countries) predict together with the mean
of their probabilities. Each member's probabilities are its calibrated ones (logits / temperature),
re-weighted to the user's class mix when one is given (`prior`, see utils.class_mix).
"""
import gc
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from models import checkpoint as ckpt
from utils.class_mix import prior_shift
from utils.data import Alphabet, check_name
from utils.errors import CheckpointError
from utils.memory import keep_freed_memory

HIDDEN = "\ufffd"  # a character outside every alphabet: what --explain puts in place of a letter
BATCH = 4096  # names per model call, in one-length batches
BATCH_ANY_LENGTH = 20_000  # names per call of a model that reads any lengths at once: the more, the more prefixes shared


@contextmanager
def cyclic_gc_paused():
    """Python's cyclic garbage collector paused for the block, then as it was (not run). Answering 20,000 names
    makes about 80,000 objects (each Prediction, its lists and tuples), none in a reference cycle, yet so many
    that the collector runs a full pass over every live object, torch's included: a fifth of the call. Objects
    that die in the block are freed by reference counting as usual; those that survive it are the collector's
    again afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    train_prior: torch.Tensor  # [n_countries], the class mix of the training rows
    assumed_prior: torch.Tensor  # [n_countries], the class mix its probabilities assume (after any post-hoc adjustment)
    seen: dict[str, list[str]]  # normalised training name -> the countries the data files it under
    path: str
    shift: torch.Tensor | None = None  # [n_countries], log of the user's mix over the training mix

    @classmethod
    def from_payload(cls, payload: dict, path: str | Path, device: str = "cpu") -> "Member":
        """The member a checkpoint's dict (models.checkpoint.load's, read from `path`) describes."""
        model = ckpt.build_model(payload, path).to(device)
        return cls(model, Alphabet(payload["alphabet"]), torch.tensor(payload["logit_offset"]),
                   payload["temperature"], torch.tensor(payload["train_prior"]),
                   torch.tensor(payload.get("assumed_prior", payload["train_prior"])), payload.get("seen", {}),
                   str(path))

    def log_probabilities(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits = self.model(letters, lengths).float().cpu() + self.offset  # [B, n_countries]
        log_probs = torch.log_softmax(logits / self.temperature, dim=1)
        return log_probs if self.shift is None else torch.log_softmax(log_probs + self.shift, dim=1)


def reads_any_length(model: torch.nn.Module) -> bool:
    """Whether `model` (every member, for a mix) reads names of mixed lengths at no extra cost (no padding, no
    packing): then it gets whole batches, else one-length batches."""
    members = getattr(model, "members", None)
    if isinstance(members, torch.nn.ModuleList):
        return all(map(reads_any_length, members))
    return bool(getattr(model, "reads_any_length", False))


class Predictor:
    def __init__(self, members: list[Member], countries: list[str], device: str = "cpu",
                 prior: torch.Tensor | None = None):
        if not members:
            raise ValueError("a predictor needs at least one model")
        self.members, self.countries, self.device = members, list(countries), device
        self.alphabet = members[0].alphabet  # for the unknown-character warning
        self.set_prior(prior)
        keep_freed_memory()

    def __setstate__(self, state: dict) -> None:
        """Unpickled (a table run's pool process receives its Predictor so): __init__ does not run, yet this
        process answers names too."""
        self.__dict__.update(state)
        keep_freed_memory()

    def set_prior(self, prior: torch.Tensor | None) -> None:
        """Re-weight every answer to a class mix ([n_countries] shares; None: the mix the models assume)."""
        for member in self.members:
            member.shift = None if prior is None else prior_shift(member.assumed_prior, prior)

    def seen_in_training(self, normalised_name: str) -> list[str]:
        """The countries the training data files this name under (any member's), [] for a name not trained on."""
        return sorted({c for member in self.members for c in member.seen.get(normalised_name, [])})

    @classmethod
    def from_checkpoints(cls, paths: list[str | Path], device: str = "cpu") -> "Predictor":
        return cls.from_payloads([(path, ckpt.load(path)) for path in paths], device)

    @classmethod
    def from_payloads(cls, loaded: list[tuple[str | Path, dict]], device: str = "cpu") -> "Predictor":
        """From checkpoints already read: (path, models.checkpoint.load's dict) for each."""
        members, countries = [], None
        for path, payload in loaded:
            if countries is not None and payload["countries"] != countries:
                raise CheckpointError(f"{path}: its countries differ from those of {loaded[0][0]}; "
                                      "only models of one country list can predict together")
            countries = payload["countries"]
            members.append(Member.from_payload(payload, path, device))
        return cls(members, countries, device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        return cls.from_checkpoints([path], device)

    @torch.inference_mode()
    def log_probabilities(self, normalised_names: list[str], batch_size: int = BATCH) -> torch.Tensor:
        """Log of the members' mean probability, [N, n_countries], for already-normalised, non-empty names.

        Each distinct name runs once. A model that reads any lengths at once (`reads_any_length`) gets up to
        BATCH_ANY_LENGTH names a call; any other, batches of one length each, so recurrent layers never need packing.
        """
        distinct = dict.fromkeys(normalised_names)
        if len(distinct) < len(normalised_names):  # a repeated name: computed once, its row copied
            at = {name: i for i, name in enumerate(distinct)}
            return self.log_probabilities(list(distinct), batch_size)[[at[name] for name in normalised_names]]
        out = torch.empty(len(normalised_names), len(self.countries))
        if not normalised_names:
            return out
        member_log_probs = []
        for member in self.members:
            letters, lengths = member.alphabet.encode_many(normalised_names)  # [N, T_max], [N]
            if reads_any_length(member.model):
                member_log_probs.append(torch.cat([
                    member.log_probabilities(letters[i:i + BATCH_ANY_LENGTH].to(self.device), lengths[i:i + BATCH_ANY_LENGTH])
                    for i in range(0, len(lengths), BATCH_ANY_LENGTH)]))
                continue
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

    def probabilities(self, normalised_names: list[str], batch_size: int = BATCH) -> torch.Tensor:
        """[N, n_countries], each row summing to 1, for already-normalised, non-empty names."""
        return self.log_probabilities(normalised_names, batch_size).exp()

    def predict(self, names: list[str], topk: int = 1) -> list[Prediction]:
        """Top-k countries for each name; InvalidNameError for an empty, letter-less or too long name."""
        with cyclic_gc_paused():
            normalised = [check_name(name) for name in names]
            if not normalised:
                return []
            best = self.probabilities(normalised).topk(min(topk, len(self.countries)), dim=1)
            # whole-tensor .tolist() once: iterating a tensor row by row costs microseconds per row
            values, indices = best.values.tolist(), best.indices.tolist()
            return [Prediction(name, norm, [(self.countries[i], p) for p, i in zip(row_values, row_indices)],
                               self.alphabet.unknown_chars(norm))
                    for name, norm, row_values, row_indices in zip(names, normalised, values, indices)]

    def record(self, p: Prediction, min_probability: float = 0.0,
               explanation: list[tuple[str, float]] | None = None) -> dict:
        """One name's answer as a JSON-ready dict: what `predict.py --json` prints and serve.py returns. The country
        is "unknown" (abstained) when the top probability is below `min_probability`; the best guess stays in top."""
        abstained = p.top[0][1] < min_probability
        return {"name": p.name, "normalised": p.normalised, "country": "unknown" if abstained else p.country,
                "abstained": abstained, "top": [{"country": c, "probability": round(prob, 6)} for c, prob in p.top],
                "seen_in_training": self.seen_in_training(p.normalised),
                **({"explanation": [{"letter": letter, "effect": round(effect, 6)} for letter, effect in explanation]}
                   if explanation is not None else {})}

    def explain(self, normalised_name: str, country: str) -> list[tuple[str, float]]:
        """Each letter of the name with how much `country`'s probability drops when that letter alone is hidden
        (read as an unknown character); a negative number means the letter spoke against it."""
        column = self.countries.index(country)
        variants = [normalised_name] + [normalised_name[:i] + HIDDEN + normalised_name[i + 1:]
                                        for i in range(len(normalised_name))]
        probs = self.probabilities(variants)[:, column].tolist()  # [1 + len(name)]
        return [(letter, probs[0] - hidden) for letter, hidden in zip(normalised_name, probs[1:])]

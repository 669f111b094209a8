"""A combination of trained models of any families: a weighted log-linear mix of their log-probabilities.

    logits(x) = sum_m  w_m * log_softmax(member_m(x) + offset_m)

The weights are fitted on the validation split after the members are trained (train.py --model gru+ngram),
so a member that is sure of itself too often counts for less. The checkpoint of a mix is one file: the
members' args and weights, their class-mix offsets, and their states under members.<m>.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class MixArgs:
    n_letters: int
    n_countries: int
    members: list  # [{"family": str, "args": dict}] for each member, in order
    weights: list  # w_m, one per member


class MixModel(nn.Module):
    def __init__(self, args: MixArgs, build_model):
        """`build_model(family, args dict)` builds each member: the registry's, passed in so that this module
        needs nothing from it."""
        super().__init__()
        if len(args.members) != len(args.weights) or len(args.members) < 2:
            raise ValueError("a mix needs two or more members, and one weight for each")
        if any(m["family"] == "mix" for m in args.members):
            raise ValueError("a mix cannot hold a mix")
        self.args = args
        self.members = nn.ModuleList(build_model(m["family"], m["args"]) for m in args.members)
        self.register_buffer("weights", torch.tensor(args.weights, dtype=torch.float32))  # [M]
        self.register_buffer("offsets", torch.zeros(len(args.members), args.n_countries))  # [M, n_countries]

    def member_log_probs(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each member's log-probabilities, [M, B, n_countries]."""
        return torch.stack([torch.log_softmax(member(letters, lengths).float() + offset, dim=1)
                            for member, offset in zip(self.members, self.offsets)])

    def forward(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.einsum("m,mbc->bc", self.weights, self.member_log_probs(letters, lengths))  # [B, n_countries]


def mix_state(member_states: list[dict], weights: list[float], offsets: list[list[float]]) -> dict:
    """A MixModel's state dict from its members' state dicts, their weights and their class-mix offsets."""
    state = {f"members.{i}.{key}": value for i, member in enumerate(member_states) for key, value in member.items()}
    return {**state, "weights": torch.tensor(weights, dtype=torch.float32), "offsets": torch.tensor(offsets)}

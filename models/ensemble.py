"""Several classifiers of one shape, trained side by side from different initial weights, that predict
together with the mean of their probabilities (train.py --members)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.classifier import ModelArgs, NameClassifier


class Ensemble(nn.Module):
    def __init__(self, args: ModelArgs, n_members: int):
        super().__init__()
        if n_members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, not {n_members}")
        self.args = args
        self.members = nn.ModuleList(NameClassifier(args) for _ in range(n_members))

    def forward(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_countries]: the log of the members' mean probabilities (each with its offset in eval mode)."""
        log_probs = torch.stack([F.log_softmax(member(letters, lengths), dim=1)
                                 for member in self.members])  # [M, B, n_countries]
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))  # [B, n_countries]


def build_model(args: ModelArgs, n_members: int = 1) -> NameClassifier | Ensemble:
    """One classifier, or an ensemble of `n_members`; one classifier keeps the state-dict keys it always had."""
    return NameClassifier(args) if n_members == 1 else Ensemble(args, n_members)


def members_of(model: NameClassifier | Ensemble) -> list[NameClassifier]:
    """The classifiers each trained on its own loss: the ensemble's members, or the one model."""
    return list(model.members) if isinstance(model, Ensemble) else [model]

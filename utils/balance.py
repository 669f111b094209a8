"""Ways to counter the class imbalance (Russian is 47% of the rows): weighted loss, balanced sampling,
logit adjustment in training or after it, and the class mix the predictions assume."""
import torch
from torch.utils.data import DataLoader, Sampler

from utils.dataset import batch_loader

BALANCE = ("none", "weighted", "sampler", "logit-adjust")
PRIORS = ("rows", "names")


def class_counts(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Rows per class, [n_classes] float, at least 1 so no class divides by zero."""
    return torch.bincount(labels, minlength=n_classes).float().clamp(min=1)


def class_weights(labels: torch.Tensor, n_classes: int, power: float = 1.0) -> torch.Tensor:
    """Cross-entropy weights (n / (K * n_c)) ** power, [n_classes]; power 1 is scikit-learn's "balanced"
    (each class weighs the same in total), 0 is no weighting, in between a compromise."""
    return (len(labels) / (n_classes * class_counts(labels, n_classes))) ** power


def log_prior(labels: torch.Tensor, n_classes: int, power: float = 1.0) -> torch.Tensor:
    """power * log of the class frequencies, [n_classes]: the offset of logit-adjusted training.

    Training on logits + log prior (Menon et al., 2021, "Long-tail learning via logit adjustment")
    lets the raw logits learn the balanced posterior; prediction uses the raw logits unchanged.
    """
    return power * (class_counts(labels, n_classes) / len(labels)).log()


def prediction_offset(trained_labels: torch.Tensor, row_labels: torch.Tensor, n_classes: int,
                      prior: str = "rows", posthoc_adjust: float = 0.0) -> torch.Tensor:
    """What the model adds to its logits when predicting, [n_classes]; zeros when nothing changes.

    A model trained on `trained_labels` (each distinct name once, with --dedupe) has learned their
    class mix. prior "rows" multiplies each class's odds by its share of every row of the training
    split (`row_labels`) over its share of `trained_labels`, so predictions follow the mix the test
    split counts: Arabic is 85 distinct training names but 10% of the rows. `posthoc_adjust` > 0 then
    moves the decisions towards equal classes by subtracting that power of the log prior (post-hoc
    logit adjustment, Menon et al., 2021); it works on top of any --balance used in training.
    """
    trained, rows = log_prior(trained_labels, n_classes), log_prior(row_labels, n_classes)  # [n_classes]
    target = rows if prior == "rows" else trained
    return target - trained - posthoc_adjust * target


class BalancedBucketSampler(Sampler[list[int]]):
    """Each epoch, as many rows as the split has, drawn with replacement so every class is equally likely,
    then cut into batches of one name length (as LengthBucketSampler does) and shuffled."""

    def __init__(self, lengths: torch.Tensor, labels: torch.Tensor, n_classes: int, batch_size: int,
                 seed: int = 0, power: float = 1.0):
        self.lengths, self.batch_size = lengths, batch_size
        # power 1: every class equally likely; 0: the data's own mix
        self.row_weights = (class_counts(labels, n_classes) ** -power)[labels]  # [N]
        self.generator = torch.Generator().manual_seed(seed)

    def _batches(self) -> list[list[int]]:
        rows = torch.multinomial(self.row_weights, len(self.row_weights), replacement=True, generator=self.generator)
        rows = rows[torch.argsort(self.lengths[rows], stable=True)]  # group by length
        batches = []
        for length_rows in torch.split(rows, torch.unique_consecutive(self.lengths[rows], return_counts=True)[1].tolist()):
            batches += [chunk.tolist() for chunk in length_rows.split(self.batch_size)]
        order = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in order]

    def __iter__(self):
        yield from self._batches()

    def __len__(self) -> int:  # about; the draw changes each epoch
        return max(1, len(self.row_weights) // self.batch_size)


def balanced_loader(dataset, n_classes: int, batch_size: int, seed: int = 0, power: float = 1.0) -> DataLoader:
    """A DataLoader like utils.dataset.make_loader's, over class-balanced draws of the dataset's rows."""
    return batch_loader(dataset, BalancedBucketSampler(dataset.lengths, dataset.labels, n_classes, batch_size, seed, power))

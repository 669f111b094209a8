"""Seeded train/validation/test split, stratified by country and grouped by normalised name."""
from collections import Counter, defaultdict
from dataclasses import dataclass

from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    train: list[int]  # row indices into the sample list
    val: list[int]
    test: list[int]


def grouped_split(names: list[str], labels: list[int], val_fraction: float, test_fraction: float, seed: int) -> Split:
    """Split the distinct names, so every copy of a name lands on one side.

    A name listed under several countries is stratified by the rarest of them (99 of the 100
    Scottish names are also English), so every side keeps the country mix, rare ones included.
    The fractions are fractions of distinct names.
    """
    rows_of = defaultdict(list)
    for row, name in enumerate(names):
        rows_of[name].append(row)
    groups = sorted(rows_of)
    frequency = Counter(labels)
    strata = [min((labels[r] for r in rows_of[g]), key=lambda label: (frequency[label], label)) for g in groups]
    rest, test, rest_strata, _ = train_test_split(groups, strata, test_size=test_fraction,
                                                  stratify=strata, random_state=seed)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                  stratify=rest_strata, random_state=seed)

    def rows(part):
        return sorted(r for g in part for r in rows_of[g])

    return Split(train=rows(train), val=rows(val), test=rows(test))

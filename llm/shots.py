"""Few-shot examples: drawn reproducibly from the checkpoint's training split, never from its test split."""
import random
from collections import defaultdict
from pathlib import Path

from utils.errors import DataError
from utils.data import SurnameData


def training_pairs(record: dict, countries: list[str], data: str | Path | None = None) -> list[tuple[str, str]]:
    """(normalised name, country) of every training row, the split rebuilt exactly as train.py made it."""
    prepared = SurnameData.from_record(record, data)
    if prepared.countries != list(countries):
        raise DataError(f"{prepared.path}: its countries differ from the checkpoint's")
    return [(prepared.names[r], prepared.countries[prepared.labels[r]]) for r in prepared.split.train]


def draw_examples(pairs: list[tuple[str, str]], k: int, seed: int) -> list[tuple[str, str]]:
    """k labelled names, the same ones for the same pairs and seed, from as many countries as k allows.

    Countries take turns in a seeded order, so five examples show five countries rather than, as a plain
    random draw from this data would, mostly Russian names. Names listed under several countries are
    skipped: an example must not teach one of two right answers as the only one.
    """
    countries_of = defaultdict(set)
    for name, country in pairs:
        countries_of[name].add(country)
    by_country = defaultdict(list)
    for name in sorted(countries_of):
        if len(countries_of[name]) == 1:
            by_country[next(iter(countries_of[name]))].append(name)
    available = sum(len(names) for names in by_country.values())
    if k > available:
        raise DataError(f"asked for {k} examples but the training split has {available} usable names")
    rng = random.Random(seed)
    order = sorted(by_country)
    rng.shuffle(order)
    for country in order:
        rng.shuffle(by_country[country])
    examples, turn = [], 0
    while len(examples) < k:
        for country in order:
            if turn < len(by_country[country]) and len(examples) < k:
                examples.append((by_country[country][turn], country))
        turn += 1
    return examples

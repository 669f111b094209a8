"""Few-shot examples: drawn reproducibly from the checkpoint's training split, never from its test split."""
import hashlib
import random
from collections import defaultdict
from pathlib import Path

from utils.data import load_samples
from utils.errors import DataError
from utils.split import grouped_split
from utils.text import normalise


def _data_sha256(names: list[str], countries: list[str]) -> str:
    """The fingerprint train.py stores in the checkpoint's split info (same rows, same digest)."""
    digest = hashlib.sha256()
    for name, country in zip(names, countries):
        digest.update(f"{name}\t{country}\n".encode())
    return digest.hexdigest()


def training_pairs(split_info: dict, countries: list[str], data: str | Path | None = None) -> list[tuple[str, str]]:
    """(normalised name, country) of every training row, the split rebuilt exactly as train.py made it."""
    path = Path(data or split_info["data"])
    samples = load_samples(path)
    if _data_sha256([s.name for s in samples], [s.country for s in samples]) != split_info["data_sha256"]:
        raise DataError(f"{path} is not the data the checkpoint was trained on (its fingerprint differs), so its "
                        "training split cannot be rebuilt; pass --data PATH to that data")
    label_of = {country: i for i, country in enumerate(countries)}
    names = [normalise(s.name) for s in samples]
    labels = [label_of[s.country] for s in samples]
    split = grouped_split(names, labels, split_info["val_fraction"], split_info["test_fraction"], split_info["seed"])
    return [(names[r], samples[r].country) for r in split.train]


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

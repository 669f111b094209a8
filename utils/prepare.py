"""Data as training and evaluation both see it: read, normalise, label, fingerprint, split."""
import hashlib
from dataclasses import dataclass
from pathlib import Path

from utils.data import Sample, countries_of, load_samples
from utils.errors import DataError
from utils.split import Split, grouped_split
from utils.text import normalise


@dataclass
class Prepared:
    path: Path
    samples: list[Sample]
    names: list[str]  # normalised, what the model reads
    countries: list[str]  # the label set, sorted
    labels: list[int]  # index into countries, one per sample
    sha256: str  # of the raw rows, see fingerprint()


def fingerprint(samples: list[Sample]) -> str:
    """sha256 of the rows, so evaluation can tell it has the data the split was made from."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.name}\t{s.country}\n".encode())
    return digest.hexdigest()


def normalise_all(samples: list[Sample]) -> list[str]:
    """Normalised names; DataError at the first row that normalises to nothing."""
    names = [normalise(s.name) for s in samples]
    empty = [s.source for s, name in zip(samples, names) if not name]
    if empty:
        raise DataError(f"{empty[0]}: nothing left of the name after transliteration")
    return names


def prepare(path: str | Path) -> Prepared:
    """Every row of a data file or folder, normalised and labelled with the countries found in it."""
    samples = load_samples(path)
    countries = countries_of(samples)
    label_of = {country: i for i, country in enumerate(countries)}
    return Prepared(Path(path), samples, normalise_all(samples), countries,
                    [label_of[s.country] for s in samples], fingerprint(samples))


def split_of(data: Prepared, val_fraction: float, test_fraction: float, seed: int) -> Split:
    """The train/validation/test rows that train.py uses for these fractions and seed."""
    return grouped_split(data.names, data.labels, val_fraction, test_fraction, seed)

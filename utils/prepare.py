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


def recorded_split(split_info: dict, path: str | Path | None = None) -> tuple[Prepared, Split]:
    """The data and split a checkpoint was trained on, rebuilt from its `split` record.

    `path` overrides where the data is now; either way its sha256 must match the record.
    """
    path = Path(path or split_info["data"])
    if not path.exists():
        raise DataError(f"the data this checkpoint was trained on is not at {path}; pass the data's "
                        f"new location if it moved (evaluate.py --split-data, predict.py --data)")
    data = prepare(path)
    if data.sha256 != split_info["data_sha256"]:
        raise DataError(f"{path} is not the data this checkpoint was trained on (sha256 {data.sha256[:12]}…, "
                        f"training saw {split_info['data_sha256'][:12]}…), so its split cannot be rebuilt")
    return data, split_of(data, split_info["val_fraction"], split_info["test_fraction"], split_info["seed"])

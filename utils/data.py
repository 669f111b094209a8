"""Reading the surname data set in either layout, and finding (or fetching) it."""
from dataclasses import dataclass
from pathlib import Path

from utils.errors import DataError


@dataclass(frozen=True)
class Sample:
    name: str  # as written in the file
    country: str
    source: str  # "file:line", for messages


def _read_lines(path: Path):
    """(line number, text) of the non-blank lines of a UTF-8 file; undecodable bytes stop with file:line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{number}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            if line.strip():
                yield number, line


def read_tsv(path: Path) -> list[Sample]:
    """`name<TAB>country` per line (the original project's x.txt)."""
    samples = []
    for number, line in _read_lines(path):
        fields = line.split("\t")
        where = f"{path}:{number}"
        if len(fields) != 2:
            raise DataError(f"{where}: expected 'name<TAB>country', found {len(fields) - 1} tabs in {line!r}")
        name, country = fields[0].strip(), fields[1].strip()
        if not name:
            raise DataError(f"{where}: empty name")
        if not country:
            raise DataError(f"{where}: empty country")
        samples.append(Sample(name, country, where))
    return samples


def read_folder(folder: Path) -> list[Sample]:
    """One `<Country>.txt` per country, one name per line (the PyTorch tutorial's data/names/)."""
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise DataError(f"{folder}: no <Country>.txt files in this folder")
    samples = []
    for path in files:
        for number, line in _read_lines(path):
            name = line.strip()
            if "\t" in name:
                raise DataError(f"{path}:{number}: a tab inside a name ({line!r}); is this a TSV file?")
            samples.append(Sample(name, path.stem, f"{path}:{number}"))
    return samples


def load_samples(path: str | Path) -> list[Sample]:
    """Every labelled name in a TSV file or a folder of <Country>.txt files, in file order."""
    path = Path(path)
    if path.is_dir():
        samples = read_folder(path)
    elif path.is_file():
        samples = read_tsv(path)
    else:
        raise DataError(f"{path}: no such file or folder; pass --data PATH to a names.tsv or names/ folder")
    if not samples:
        raise DataError(f"{path}: no names in it")
    return samples


def countries_of(samples: list[Sample]) -> list[str]:
    """The label set: sorted, so indices agree on every machine."""
    return sorted({s.country for s in samples})


def resolve_data(path: str | Path, default: Path, url: str) -> Path:
    """The data to use: `path` as given, except that the default location is downloaded when missing."""
    path = Path(path)
    if path.exists() or path.resolve() != default.resolve():
        return path
    from utils.download import fetch_names

    fetch_names(url, default)
    return default

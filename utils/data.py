"""The surname data, from file to batches: read, normalise, split by name, encode, batch.

    data = SurnameData.build("data/names.tsv", val_fraction=0.1, test_fraction=0.1, seed=0)
    loader = data.loader("train", batch_size=64, shuffle=True, seed=0)    # (letters [B, T], lengths [B], labels [B])
    data.record()                                   # what a checkpoint keeps to rebuild the same split
    SurnameData.from_record(checkpoint["data"])     # ... and rebuilds it (the sha256 must match)

Two layouts are read: `name<TAB>country` lines (the original project's x.txt) and a folder of
`<Country>.txt` files, one name per line (the PyTorch tutorial's data/names/). Countries come from
the data, sorted, so label indices agree on every machine.
"""
import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from anyascii import anyascii
from torch.utils.data import DataLoader, Dataset, Sampler

from config.config import DATA_PRESETS, DEFAULT_DATA, MAX_NAME_LENGTH
from utils.class_mix import class_shares
from utils.errors import DataError, InvalidNameError

# --- reading ---


@dataclass(frozen=True)
class Sample:
    name: str  # as written in the file
    country: str
    source: str  # "file:line", for messages
    origin: str = ""  # where the name comes from: a TSV's third column, else the file's name (names.tsv)


def _read_lines(path: Path):
    """(line number, text) of the non-blank lines of a UTF-8 file; undecodable bytes stop with file:line."""
    try:
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
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None


def read_tsv(path: Path) -> list[Sample]:
    """`name<TAB>country` per line, or `name<TAB>country<TAB>origin` (data/corpus.tsv names each row's source)."""
    samples = []
    for number, line in _read_lines(path):
        fields = line.split("\t")
        where = f"{path}:{number}"
        if len(fields) not in (2, 3):
            raise DataError(f"{where}: expected 'name<TAB>country', found {len(fields) - 1} tabs in {line[:80]!r}")
        name, country = fields[0].strip(), fields[1].strip()
        if not name or not country:
            raise DataError(f"{where}: empty {'name' if not name else 'country'}")
        origin = fields[2].strip() if len(fields) == 3 and fields[2].strip() else path.name
        samples.append(Sample(name, country, where, origin))
    return samples


def read_folder(folder: Path) -> list[Sample]:
    """One `<Country>.txt` per country, one name per line."""
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise DataError(f"{folder}: no <Country>.txt files in this folder")
    samples = []
    for path in files:
        for number, line in _read_lines(path):
            if "\t" in line:
                raise DataError(f"{path}:{number}: a tab inside a name ({line[:80]!r}); is this a TSV file?")
            samples.append(Sample(line.strip(), path.stem, f"{path}:{number}", folder.name))
    return samples


def load_samples(path: str | Path | list) -> list[Sample]:
    """Every labelled name in a TSV file or a folder of <Country>.txt files (or in several, one after the other), in
    file order."""
    if isinstance(path, (list, tuple)) or is_preset(path):
        return [sample for one in data_files(path) for sample in load_samples(one)]
    path = Path(path)
    if path.is_dir():
        samples = read_folder(path)
    elif path.is_file():
        samples = read_tsv(path)
    elif path.exists():  # a device, a FIFO, a socket: not a data set (/dev/zero would never end)
        raise DataError(f"{path} is not a regular file or folder; pass --data PATH to a names.tsv or names/ folder")
    else:
        raise DataError(f"{path}: no such file or folder; pass --data PATH to a names.tsv or names/ folder")
    if not samples:
        raise DataError(f"{path}: no names in it")
    return samples


def fingerprint(samples: list[Sample]) -> str:
    """sha256 of the rows, so a checkpoint can tell it has the data its split was made from."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.name}\t{s.country}\n".encode())
    return digest.hexdigest()


# --- normalising ---

_SPACES = re.compile(r"\s+")
# Greek "ου" is one sound, written "ou" in the data (Papadopoulos); letter by letter it would become "oy"
_GREEK_OU = re.compile("[οόΟ][υύΥ]")
_ASCII_LETTER = re.compile("[A-Za-z]")  # the characters that are both ASCII and alphabetic


def _kept(ch: str) -> bool:
    """Not a symbol, a control character or a numeral other than 0-9."""
    category = unicodedata.category(ch)
    return category[0] not in "SC" and (category[0] != "N" or ch in "0123456789")


# the ASCII characters the full path drops (control characters other than whitespace, and the symbols $+<=>^`|~);
# it keeps every other ASCII character as it is (NFC, the Greek rule and anyascii leave ASCII unchanged)
_ASCII_DROP = str.maketrans("", "", "".join(ch for ch in map(chr, range(128)) if not (ch.isspace() or _kept(ch))))


def _transliterate(name: str) -> str:
    """The full path: symbols and control characters dropped, NFC, the Greek rule, anyascii; whitespace tidied."""
    kept = "".join(ch for ch in name if ch.isspace() or _kept(ch))
    kept = _GREEK_OU.sub(lambda m: "OU" if m.group()[1].isupper() else "Ou" if m.group()[0].isupper() else "ou",
                         unicodedata.normalize("NFC", kept))
    return _SPACES.sub(" ", anyascii(kept)).strip()


def _tidy_ascii(name: str) -> str:
    """`_transliterate` for an ASCII name, without the per-character Unicode work: what it drops, dropped; whitespace
    tidied (str.split splits on exactly the characters \\s matches and strip removes, for ASCII)."""
    if name.isalpha():  # the common case: nothing to drop, no whitespace
        return name
    return " ".join(name.translate(_ASCII_DROP).split())


def normalise(name: str) -> str:
    """Transliterate to ASCII ('Müller' -> 'Muller', 'Горбачёв' -> 'Gorbachev') and tidy whitespace.

    Greek "ου" becomes "ou" as the data writes it ('Παπαδόπουλος' -> 'Papadopoulos'). Symbols, control
    characters and numerals other than ASCII digits (emoji, ™, ©, Ⅻ, ½) are dropped first: transliterated,
    they would become words (':grinning:', 'XII'). A name typed all in lower or all in upper case is title-cased,
    because the data writes surnames that way ('lucy' -> 'Lucy') and the encoding keeps case. Only
    the first MAX_NAME_LENGTH * 4 characters are read, so a huge input costs bounded time. An ASCII name takes a
    shorter path to the same result (tests/test_data.py compares the two on arbitrary text).
    """
    name = name[: MAX_NAME_LENGTH * 4]
    ascii_name = _tidy_ascii(name) if name.isascii() else _transliterate(name)
    if ascii_name.islower() or ascii_name.isupper():
        ascii_name = ascii_name.title()
    return ascii_name


def check_name(raw: str) -> str:
    """Normalise a name for prediction, or raise InvalidNameError if it cannot be classified."""
    if raw.isascii() and raw.isalpha() and len(raw) <= MAX_NAME_LENGTH and not (raw.islower() or raw.isupper()):
        return raw  # ASCII letters only, in mixed case: already normal, and valid (the usual name, answered in C)
    if len(raw) > MAX_NAME_LENGTH * 4:
        raise InvalidNameError(f"name of {len(raw):,} characters; at most {MAX_NAME_LENGTH} are read")
    name = normalise(raw)
    if not raw.strip():
        raise InvalidNameError(f"empty name {raw[:40]!r}")
    if not _ASCII_LETTER.search(name):
        raise InvalidNameError(f"name {raw[:40]!r} has no letters")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"name {raw[:40]!r}… has {len(name)} characters; at most {MAX_NAME_LENGTH} are read")
    return name


# --- how surnames are written: the feminine forms the data set lacks ---

# Russian and Czech surnames take a feminine form (Ivanov -> Ivanova, Novak -> Novakova) that the data set,
# built from lists of mostly masculine forms, hardly has: left alone, "Belova" reads as Czech.
_RUSSIAN_ENDINGS = (("skiy", "skaya"), ("skii", "skaya"), ("sky", "skaya"), ("iy", "aya"), ("yy", "aya"), ("oy", "aya"))


def feminine_form(name: str, country: str) -> str | None:
    """The feminine form of a Russian or Czech surname (Ivanov -> Ivanova, Tolstoy -> Tolstaya,
    Sedlacek -> Sedlackova, Cerny -> Cerna), or None when the country or the name has none."""
    low = name.lower()
    if country == "Russian":
        for male, female in _RUSSIAN_ENDINGS:
            if low.endswith(male) and len(low) > len(male) + 2:
                return name[: len(name) - len(male)] + female
        return name + "a" if re.search(r"(ov|ev|in|yn)$", low) and len(low) > 4 else None
    if country == "Czech" and len(low) >= 4 and not low.endswith(("ova", "ska")):
        if low.endswith("y"):
            return name[:-1] + "a"
        if low.endswith(("ek", "ec")):
            return name[:-2] + name[-1] + "ova"
        if low.endswith("a"):
            return name[:-1] + "ova"
        if low[-1] in "bcdfghjklmnpqrstvwxz":
            return name + "ova"
    return None


# --- encoding ---


class Alphabet:
    """Letter <-> index, with one extra index for every character outside the alphabet."""

    def __init__(self, letters: str):
        if not isinstance(letters, str) or len(set(letters)) != len(letters):
            raise ValueError("alphabet letters must be a string of distinct characters")
        self.letters = letters
        self.unknown_index = len(letters)
        self._index = {letter: i for i, letter in enumerate(letters)}

    @property
    def size(self) -> int:
        """Width of a one-hot letter: the letters plus the unknown slot."""
        return len(self.letters) + 1

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of `text` outside the alphabet, sorted."""
        if not text.strip(self.letters):  # every character is a letter: the usual case, answered in C
            return []
        return sorted({ch for ch in text if ch not in self._index})

    def encode(self, text: str) -> torch.Tensor:
        """Letter indices, [len(text)] int64; unknown characters get `unknown_index`."""
        return torch.tensor([self._index.get(ch, self.unknown_index) for ch in text], dtype=torch.long)

    def encode_many(self, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Letter indices of many names at once: (letters [N, T_max] zero-padded, lengths [N]).

        Row i equals `encode(names[i])` followed by padding, but the letters are looked up in one
        tensor operation over all code points instead of a Python loop per name.
        """
        lengths = torch.tensor([len(name) for name in names], dtype=torch.long)  # [N]
        width = int(lengths.max()) if len(names) else 0
        letters = torch.zeros(len(names), width, dtype=torch.long)  # [N, T_max]
        text = "".join(names)
        if not text:
            return letters, lengths
        codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()  # [sum(lengths)]
        table = torch.full((max(map(ord, self.letters), default=0) + 1,), self.unknown_index, dtype=torch.long)
        table[[ord(letter) for letter in self.letters]] = torch.arange(len(self.letters))
        indices = torch.where(codes < len(table), table[codes.clamp(max=len(table) - 1)], self.unknown_index)
        # row-major boolean indexing visits the cells name by name, letter by letter: the order of `text`
        letters[torch.arange(width) < lengths[:, None]] = indices
        return letters, lengths


def drop_letters(letters: torch.Tensor, p: float, unknown_index: int) -> torch.Tensor:
    """letters [B, T] with each one replaced by the unknown slot with probability p: a training-time
    augmentation, so the model cannot lean on any single letter. Uses torch's global generator."""
    if p == 0:
        return letters
    return letters.masked_fill(torch.rand(letters.shape, device=letters.device) < p, unknown_index)


# --- splitting ---


@dataclass(frozen=True)
class Split:
    train: list[int]  # row indices into the sample list
    val: list[int]
    test: list[int]


def grouped_split(names: list[str], labels: list[int], val_fraction: float, test_fraction: float, seed: int,
                  rare_to_train: bool = False) -> Split:
    """Split the distinct names, so every copy of a name lands on one side; stratified by country.

    A name listed under several countries is stratified by the rarest of them (99 of the 100
    Scottish names are also English). The fractions are fractions of distinct names. A country with
    too few distinct names for a name on every side is refused with the number it needs, or, with
    `rare_to_train`, has its names put in the training split.
    """
    from sklearn.model_selection import train_test_split

    rows_of = defaultdict(list)
    for row, name in enumerate(names):
        rows_of[name].append(row)
    groups = sorted(rows_of)
    frequency = Counter(labels)
    strata = [min((labels[r] for r in rows_of[g]), key=lambda label: (frequency[label], label)) for g in groups]
    per_stratum = Counter(strata)
    # the smallest stratum must give at least one name to each of test, val and train
    need = max(3, int(1 / min(val_fraction, test_fraction)) + 1)
    short = sorted(label for label, n in per_stratum.items() if n < need)
    if short and not rare_to_train:
        raise DataError(f"too few distinct names to put every country on every side of the split (each needs "
                        f"at least {need}): " + ", ".join(f"label {label} has {per_stratum[label]}" for label in short))
    rare = [g for g, stratum in zip(groups, strata) if stratum in short]  # with rare_to_train: all to training
    groups, strata = [g for g, st in zip(groups, strata) if st not in short], [st for st in strata if st not in short]
    if not groups:
        return Split(train=sorted(r for g in rare for r in rows_of[g]), val=[], test=[])
    rest, test, rest_strata, _ = train_test_split(groups, strata, test_size=test_fraction,
                                                  stratify=strata, random_state=seed)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                  stratify=rest_strata, random_state=seed)

    def rows(part):
        return sorted(r for g in part for r in rows_of[g])

    return Split(train=rows(train + rare), val=rows(val), test=rows(test))


def layered_split(names: list[str], labels: list[int], layers: list[int], val_fraction: float, test_fraction: float,
                  seed: int) -> Split:
    """The grouped split of several files, file by file (`layers[row]` is the row's file): the first file is split
    exactly as it would be alone; in each later file, a name already placed keeps its side, and the new names are
    split among themselves (a country with too few of them to split trains on them). So every copy of a name is on
    one side, and adding a file never moves a name of the first file: its test split stays comparable."""
    side_of: dict[str, str] = {}
    for layer in sorted(set(layers)):
        rows = [r for r in range(len(names)) if layers[r] == layer and names[r] not in side_of]
        if not rows:
            continue
        part = grouped_split([names[r] for r in rows], [labels[r] for r in rows], val_fraction, test_fraction, seed,
                             rare_to_train=layer > 0)
        for side in ("train", "val", "test"):
            for i in getattr(part, side):
                side_of[names[rows[i]]] = side
    sides = {"train": [], "val": [], "test": []}
    for row, name in enumerate(names):
        sides[side_of[name]].append(row)
    return Split(**sides)


# --- batching ---


class NamesDataset(Dataset):
    """Encoded names and country labels; `__getitems__(rows)` cuts a whole batch from tensors built once:
    letter indices [B, T] padded to the batch's longest name, lengths [B] and labels [B]."""

    def __init__(self, names: list[str], labels: list[int], alphabet: Alphabet):
        if len(names) != len(labels):
            raise ValueError("names and labels differ in length")
        self.alphabet = alphabet
        self.letters, self.lengths = alphabet.encode_many(names)  # [N, T_max], [N]
        self.labels = torch.tensor(labels, dtype=torch.long)  # [N]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """The original project's item: (one-hot [length, n_letters], label)."""
        letters = self.letters[i, : self.lengths[i]]
        return torch.nn.functional.one_hot(letters, self.alphabet.size).float(), int(self.labels[i])

    def __getitems__(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(rows, dtype=torch.long)
        lengths = self.lengths[rows]  # [B]
        return self.letters[rows, : int(lengths.max())], lengths, self.labels[rows]


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of names of one length, so a batch needs no padding; shuffled per epoch when asked.

    The generator's state is part of a run's resumable state (`generator.get_state()`).
    """

    def __init__(self, lengths: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0):
        self.lengths, self.batch_size, self.shuffle = lengths, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def batches(self) -> list[list[int]]:
        generator = self.generator if self.shuffle else None
        batches = []
        for length in torch.unique(self.lengths).tolist():
            rows = torch.nonzero(self.lengths == length).flatten()
            if generator is not None:
                rows = rows[torch.randperm(len(rows), generator=generator)]
            batches += [chunk.tolist() for chunk in rows.split(self.batch_size)]
        if generator is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self):
        yield from self.batches()

    def __len__(self) -> int:
        return sum(-(-int(n) // self.batch_size) for n in torch.unique(self.lengths, return_counts=True)[1])


def _batch_as_is(batch):
    return batch


def make_loader(dataset: NamesDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader of (letters [B, T], lengths [B], labels [B]) batches of equal-length names, cut whole by
    `dataset.__getitems__`, so nothing is collated per name."""
    return DataLoader(dataset, batch_sampler=LengthBucketSampler(dataset.lengths, batch_size, shuffle, seed),
                      collate_fn=_batch_as_is)


# --- the data of one run ---


def is_preset(entry: str | Path) -> bool:
    """Whether a --data entry names a preset of config.DATA_PRESETS (tutorial, real): its name, with no file of
    that name."""
    return str(entry) in DATA_PRESETS and not Path(entry).exists()


def data_files(entries: str | Path | list) -> list[Path]:
    """The files of --data: paths as given, and the presets of config.DATA_PRESETS (tutorial, real) by name when no
    file of that name exists."""
    entries = entries if isinstance(entries, (list, tuple)) else [entries]
    files = []
    for entry in entries:
        if is_preset(entry):
            files += [Path(p) for p in DATA_PRESETS[str(entry)]]
        else:
            files.append(Path(entry))
    if len(set(files)) != len(files):
        raise DataError("the same data file is named twice in --data: " + " ".join(map(str, files)))
    return files


@dataclass
class SurnameData:
    """Every row of a data set (one file or several), normalised and labelled, and its grouped split: built once per
    run, rebuilt from a checkpoint's record."""
    paths: list[Path]
    samples: list[Sample]
    names: list[str]  # normalised, what the models read
    countries: list[str]  # the label set, sorted
    labels: list[int]  # index into countries, one per sample
    sha256: str  # of the rows (fingerprint)
    split: Split
    seed: int
    val_fraction: float
    test_fraction: float

    @property
    def path(self) -> Path:
        """The first (or only) data file."""
        return self.paths[0]

    @property
    def description(self) -> str:
        return " + ".join(str(p) for p in self.paths)

    @classmethod
    def build(cls, paths: str | Path | list, val_fraction: float, test_fraction: float, seed: int) -> "SurnameData":
        paths = data_files(paths)
        per_file = [load_samples(p) for p in paths]
        samples = [sample for file in per_file for sample in file]
        layers = [i for i, file in enumerate(per_file) for _ in file]
        names = [normalise(s.name) for s in samples]
        bad = [s.source for s, name in zip(samples, names) if not name or len(name) > MAX_NAME_LENGTH]
        if bad:
            raise DataError(f"{bad[0]}: the name is empty after transliteration or longer than "
                            f"{MAX_NAME_LENGTH} characters ({len(bad)} such rows)")
        countries = sorted({s.country for s in samples})
        if len(countries) < 2:
            raise DataError(f"{' + '.join(map(str, paths))}: a classifier needs at least two countries, "
                            f"found {countries}")
        label_of = {country: i for i, country in enumerate(countries)}
        labels = [label_of[s.country] for s in samples]
        try:
            split = layered_split(names, labels, layers, val_fraction, test_fraction, seed)
        except DataError as e:  # say the countries by name, not by label
            raise DataError(re.sub(r"label (\d+)", lambda m: countries[int(m.group(1))], str(e))) from None
        return cls(paths, samples, names, countries, labels, fingerprint(samples), split,
                   seed, val_fraction, test_fraction)

    def record(self) -> dict:
        """What a checkpoint stores to rebuild this split: the data's file names and fingerprint, never their paths."""
        record = {"file": "+".join(p.name for p in self.paths), "sha256": self.sha256, "seed": self.seed,
                  "val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        return record if len(self.paths) == 1 else {**record, "files": [p.name for p in self.paths]}

    @classmethod
    def from_record(cls, record: dict, path: str | Path | list | None = None) -> "SurnameData":
        """The data and split a checkpoint was trained on: `path` (one file or a list; default: the recorded files
        in data/, or the embedded data set), checked against the recorded sha256."""
        if path:
            paths = [Path(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
        else:
            paths = [DEFAULT_DATA.parent / name for name in record.get("files", [])] or [DEFAULT_DATA]
        if fingerprint(load_samples(paths)) != record["sha256"]:  # before splitting: other data may not split alike
            raise DataError(f"{' + '.join(map(str, paths))} is not the data this checkpoint was trained on "
                            f"({record['file']}, sha256 {record['sha256'][:12]}…); pass the training data's path "
                            f"with --split-data")
        return cls.build(paths, record["val_fraction"], record["test_fraction"], record["seed"])

    def rows(self, part: str) -> list[int]:
        return getattr(self.split, part)

    def dataset(self, part: str, alphabet: Alphabet, dedupe: bool = False, feminine: bool = False) -> NamesDataset:
        """The rows of one side of the split; with `dedupe`, each distinct (name, country) once (Arabic is 85
        names repeated ~18 times each); with `feminine`, also the feminine form of each Russian and Czech name."""
        pairs = [(self.names[r], self.labels[r]) for r in self.rows(part)]
        if dedupe:
            pairs = list(dict.fromkeys(pairs))
        if feminine:
            have = set(pairs)
            forms = [(form, label) for name, label in pairs
                     if (form := feminine_form(name, self.countries[label])) and (form, label) not in have]
            pairs += list(dict.fromkeys(forms))
        return NamesDataset([name for name, _ in pairs], [label for _, label in pairs], alphabet)

    def class_shares(self, part: str = "train") -> torch.Tensor:
        """Each country's share of the rows of one side, [n_countries]."""
        return class_shares([self.labels[r] for r in self.rows(part)], len(self.countries))

    def countries_by_name(self, part: str | None = None) -> dict[str, list[str]]:
        """Each normalised name of one side (None: of the whole data set), with every country it is filed under."""
        seen = defaultdict(set)
        for r in self.rows(part) if part else range(len(self.names)):
            seen[self.names[r]].add(self.countries[self.labels[r]])
        return {name: sorted(c) for name, c in seen.items()}


def read_labelled(path: str | Path, countries: list[str]) -> tuple[list[str], list[str], list[str], dict]:
    """(raw names, normalised names, countries) of every row of a labelled file whose country is in
    `countries` and whose name can be read, and what was left out and why."""
    known = set(countries)
    raw, normalised, truth = [], [], []
    unknown_countries, invalid = Counter(), []
    for s in load_samples(path):
        if s.country not in known:
            unknown_countries[s.country] += 1
            continue
        try:
            normalised.append(check_name(s.name))
        except InvalidNameError:
            invalid.append(s.source)
            continue
        raw.append(s.name)
        truth.append(s.country)
    left_out = {"unknown_countries": dict(sorted(unknown_countries.items())), "invalid_names": invalid}
    return raw, normalised, truth, left_out

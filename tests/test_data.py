"""utils/data.py, from file to batches: reading, normalising, encoding, splitting, batching, the split's record,
and the embedded data set that everything reads by default."""
import hashlib
import random
import string
from collections import Counter

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from config.config import ALPHABET, DEFAULT_DATA, MAX_NAME_LENGTH, ROOT, TrainConfig
from tests.conftest import TINY, TINY_COUNTRIES, write_tiny
from utils import data as data_module
from utils.data import (Alphabet, LengthBucketSampler, NamesDataset, SurnameData, check_name, grouped_split,
                        data_files, load_samples, make_loader, normalise, read_labelled)
from utils.errors import DataError, InvalidNameError

NAMES_TSV_SHA256 = "e3bff4e585c6a6dd653dc05cd863e7ced3b94a21cd08733f8412df93bf14ca65"  # data/README.md
ALPHA = Alphabet(ALPHABET)


def random_names(n: int, seed: int) -> list[str]:
    """Names of 1-14 characters, mostly alphabet letters, some outside it ('-', 'é', '1', '中')."""
    rng = random.Random(seed)
    pool = string.ascii_letters * 3 + " .,;'" + "-é1中"
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 14))) for _ in range(n)]


# --- the embedded data set ---

@pytest.fixture(scope="module")
def embedded() -> SurnameData:
    """The embedded data set with train.py's default split."""
    cfg = TrainConfig()
    return SurnameData.build(cfg.data, cfg.val_fraction, cfg.test_fraction, cfg.seed)


def test_the_embedded_data_set_is_the_default_and_has_its_documented_sha256():
    assert DEFAULT_DATA == ROOT / "data" / "names.tsv" and data_files(TrainConfig().data) == [DEFAULT_DATA]
    assert hashlib.sha256(DEFAULT_DATA.read_bytes()).hexdigest() == NAMES_TSV_SHA256
    assert NAMES_TSV_SHA256 in (ROOT / "data" / "README.md").read_text(encoding="utf-8")


def test_the_embedded_data_set_reads_as_documented(embedded):
    assert embedded.path == DEFAULT_DATA and len(embedded.samples) == 20050
    assert len(embedded.countries) == 18 and embedded.countries == sorted(embedded.countries)
    assert len({s.name for s in embedded.samples}) == 17451  # as written; transliteration merges a few more
    assert len({s.name for s in embedded.samples if s.country == "Arabic"}) == 108
    assert Counter(s.country for s in embedded.samples)["Russian"] / 20050 == pytest.approx(0.47, abs=0.01)
    assert max(len(name) for name in embedded.names) <= MAX_NAME_LENGTH


def test_from_record_reads_the_embedded_data_set_by_default(embedded):
    record = embedded.record()
    assert record == {"file": "names.tsv", "sha256": embedded.sha256, "seed": 0, "val_fraction": 0.1,
                      "test_fraction": 0.1}
    assert SurnameData.from_record(record).split == embedded.split


# --- reading ---

def test_tsv_and_folder_layouts_give_the_same_rows(tiny_tsv, tiny_folder):
    from_tsv = sorted((s.name, s.country) for s in load_samples(tiny_tsv))
    from_folder = sorted((s.name, s.country) for s in load_samples(tiny_folder))
    assert from_tsv == from_folder and len(from_tsv) == 48
    assert SurnameData.build(tiny_folder, 0.25, 0.25, 0).countries == TINY_COUNTRIES


def test_blank_lines_bom_and_crlf_are_skipped_and_sources_point_at_the_line(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_bytes("\ufeffZhang\tChinese\n\n   \nAbe\tJapanese\r\nAdams\tEnglish\n".encode("utf-8"))
    samples = load_samples(path)
    assert [(s.name, s.country) for s in samples] == [("Zhang", "Chinese"), ("Abe", "Japanese"), ("Adams", "English")]
    assert [s.source for s in samples] == [f"{path}:1", f"{path}:4", f"{path}:5"]


def test_a_third_column_names_each_rows_origin_else_the_file_does(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text("Abe\tJapanese\tsinonym\nAdams\tEnglish\n", encoding="utf-8")
    assert [s.origin for s in load_samples(path)] == ["sinonym", "corpus.tsv"]


@pytest.mark.parametrize("line, problem", [
    ("Smith English", "expected 'name<TAB>country'"),
    ("\tEnglish", "empty name"),
    ("Smith\t ", "empty country"),
    ("Smith\tEnglish\tsource\textra", "expected 'name<TAB>country'"),
])
def test_malformed_tsv_line_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.tsv"
    path.write_text(f"Abe\tJapanese\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{path}:2: {problem}"):
        load_samples(path)


def test_undecodable_bytes_and_tabs_in_a_folder_name_file_and_line(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "German.txt").write_bytes("Müller\nSchmidt\n".encode("utf-8") + b"M\xfcller\n")
    with pytest.raises(DataError, match=r"German.txt:3: not valid UTF-8"):
        load_samples(folder)
    (folder / "German.txt").write_text("Müller\nSchmidt\tGerman\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"German.txt:2: a tab inside a name"):
        load_samples(folder)


def test_missing_or_empty_data_says_what_to_pass(tmp_path):
    with pytest.raises(DataError, match="--data"):
        load_samples(tmp_path / "nowhere.tsv")
    with pytest.raises(DataError, match="no <Country>.txt files"):
        load_samples(tmp_path)
    (tmp_path / "empty.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no names in it"):
        load_samples(tmp_path / "empty.tsv")


def test_one_country_is_not_a_classification_problem(tmp_path):
    path = write_tiny(tmp_path / "one.tsv", [(name, "Japanese") for name in TINY["Japanese"]])
    with pytest.raises(DataError, match="at least two countries"):
        SurnameData.build(path, 0.25, 0.25, 0)


def test_read_labelled_keeps_known_countries_and_readable_names(tmp_path):
    path = write_tiny(tmp_path / "x.tsv", [("Tanaka", "Japanese"), ("Dupont", "French"), ("123", "English"),
                                           ("müller", "English"), ("Rossi", "Italian"), ("Martin", "French")])
    raw, normalised, truth, left_out = read_labelled(path, TINY_COUNTRIES)
    assert (raw, normalised, truth) == (["Tanaka", "müller"], ["Tanaka", "Muller"], ["Japanese", "English"])
    assert left_out == {"unknown_countries": {"French": 2, "Italian": 1}, "invalid_names": [f"{path}:3"]}


# --- normalising ---

@pytest.mark.parametrize("raw, expected", [
    ("Müller", "Muller"), ("Łukasz", "Lukasz"), ("Straße", "Strasse"), ("Горбачёв", "Gorbachev"),
    ("Nakamura", "Nakamura"), ("  O'Neal \t", "O'Neal"), ("De  la fontaine", "De la fontaine"),
])
def test_normalise_transliterates_to_ascii(raw, expected):
    assert normalise(raw) == expected


def test_normalise_title_cases_single_case_input_like_the_data():
    assert normalise("lucy") == "Lucy"
    assert normalise("NAKAMURA") == "Nakamura"
    assert normalise("McDonald") == "McDonald"  # mixed case is kept as typed


@pytest.mark.parametrize("raw", ["", "   ", "123", "-/:", "\t", "Ⅻ", "½ ²", "\x07\x00"])
def test_check_name_rejects_empty_and_letterless_names(raw):
    with pytest.raises(InvalidNameError):
        check_name(raw)


def test_check_name_accepts_some_letters_and_refuses_what_it_cannot_read():
    assert check_name("Maxa/B") == "Maxa/B"
    assert check_name("Ямада") == "Yamada"
    assert check_name("a" * MAX_NAME_LENGTH) == "A" + "a" * (MAX_NAME_LENGTH - 1)
    with pytest.raises(InvalidNameError, match=f"at most {MAX_NAME_LENGTH}"):
        check_name("a" * (MAX_NAME_LENGTH + 1))
    with pytest.raises(InvalidNameError, match="1,000,000 characters"):
        check_name("a" * 10**6)  # refused before it is transliterated


# --- encoding ---

def test_alphabet_is_the_original_57_letters_plus_an_unknown_slot():
    assert len(ALPHABET) == 57 and ALPHA.size == 58 and ALPHA.unknown_index == 57
    assert ALPHA.encode("Ab'").tolist() == [ALPHABET.index("A"), ALPHABET.index("b"), ALPHABET.index("'")]
    assert ALPHA.encode("L:1").tolist() == [ALPHABET.index("L"), 57, 57]
    assert ALPHA.unknown_chars("Maxa/B-1") == ["-", "/", "1"]
    with pytest.raises(ValueError, match="distinct"):
        Alphabet("abca")


def test_encode_many_matches_per_name_encoding():
    names = random_names(300, seed=1) + ["", "Ö", "𝔸"]  # empty, and outside the alphabet (one beyond 16 bits)
    letters, lengths = ALPHA.encode_many(names)
    expected = torch.nn.utils.rnn.pad_sequence([ALPHA.encode(n) for n in names], batch_first=True)
    assert torch.equal(letters, expected)
    assert lengths.tolist() == [len(n) for n in names]
    assert (letters == ALPHA.unknown_index).any()  # the unknown characters really were exercised
    assert ALPHA.encode_many([])[0].shape == (0, 0)


# --- splitting ---

def test_split_keeps_every_copy_of_a_name_on_one_side_and_every_country_everywhere(embedded):
    names, labels, split = embedded.names, embedded.labels, embedded.split
    parts = [split.train, split.val, split.test]
    assert sorted(r for part in parts for r in part) == list(range(len(names)))
    sides = [{names[r] for r in part} for part in parts]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    for part in parts[1:]:
        assert {labels[r] for r in part} == set(range(len(embedded.countries)))  # stratified
    russian = embedded.countries.index("Russian")
    assert 0.40 < sum(labels[r] == russian for r in split.test) / len(split.test) < 0.55  # ~47% of all rows


def test_split_is_reproducible_and_seeded(embedded):
    names, labels = embedded.names, embedded.labels
    first = grouped_split(names, labels, 0.1, 0.1, seed=3)
    assert grouped_split(names, labels, 0.1, 0.1, seed=3) == first
    assert grouped_split(names, labels, 0.1, 0.1, seed=4).test != first.test


def test_a_country_with_too_few_distinct_names_is_refused_by_name(tmp_path):
    rows = [(name, country) for country, names in TINY.items() for name in names]
    rows += [("Papadopoulos", "Greek")] * 5 + [("Georgiou", "Greek")]  # 6 rows but 2 distinct names
    path = write_tiny(tmp_path / "greek.tsv", rows)
    with pytest.raises(DataError) as e:
        SurnameData.build(path, 0.25, 0.25, 0)  # each side needs a name of each country: 5 at 0.25
    assert "at least 5" in str(e.value) and "Greek has 2" in str(e.value) and "label" not in str(e.value)
    for country in TINY:
        assert country not in str(e.value)
    with pytest.raises(DataError, match="at least 11\\): label 0 has 2"):  # 10% of 11 names is one
        grouped_split(["Papadopoulos", "Georgiou", *TINY["Russian"]], [0, 0] + [1] * 16, 0.1, 0.1, seed=0)


# --- batching ---

@pytest.fixture
def dataset() -> NamesDataset:
    names = random_names(40, seed=0)
    return NamesDataset(names, [i % 5 for i in range(len(names))], ALPHA)


def test_item_is_the_one_hot_of_the_name(dataset):
    names = random_names(40, seed=0)
    x, label = dataset[7]
    assert x.shape == (len(names[7]), ALPHA.size) and label == 7 % 5
    assert torch.equal(x.argmax(dim=1), ALPHA.encode(names[7])) and torch.equal(x.sum(dim=1), torch.ones(len(names[7])))


def test_batched_fetch_cuts_the_rows_padded_to_the_longest(dataset):
    rows = [3, 0, 17, 25, 9]
    letters, lengths, labels = dataset.__getitems__(rows)
    assert lengths.tolist() == [len(dataset[r][0]) for r in rows] and labels.tolist() == [r % 5 for r in rows]
    assert letters.shape == (5, max(lengths))
    for i, r in enumerate(rows):
        assert torch.equal(letters[i, : lengths[i]], dataset[r][0].argmax(dim=1))
        assert (letters[i, lengths[i]:] == 0).all()
    with pytest.raises(ValueError, match="differ in length"):
        NamesDataset(["Abe"], [0, 1], ALPHA)


def test_bucket_sampler_covers_every_row_once_in_one_length_batches(dataset):
    sampler = LengthBucketSampler(dataset.lengths, batch_size=4, shuffle=True, seed=1)
    batches = list(sampler)
    assert sorted(r for b in batches for r in b) == list(range(len(dataset)))
    assert all(len(b) <= 4 and len({int(dataset.lengths[r]) for r in b}) == 1 for b in batches)
    assert len(sampler) == len(batches)
    assert list(sampler) != batches  # a new order each epoch
    assert list(LengthBucketSampler(dataset.lengths, batch_size=4, shuffle=True, seed=1)) == batches  # seeded
    ordered = LengthBucketSampler(dataset.lengths, batch_size=4, shuffle=False)
    assert list(ordered) == list(ordered)


def test_loader_yields_whole_index_batches(dataset):
    seen = []
    for letters, lengths, labels in make_loader(dataset, batch_size=8, shuffle=False):
        assert letters.dtype == torch.long and letters.shape == (len(labels), int(lengths[0]))
        assert (lengths == lengths[0]).all()
        seen += labels.tolist()
    assert sorted(seen) == sorted(i % 5 for i in range(len(dataset)))


# --- the data of one run ---

def test_surname_data_labels_record_and_rebuild(tiny_tsv):
    data = SurnameData.build(tiny_tsv, 0.25, 0.25, seed=0)
    assert data.countries == TINY_COUNTRIES
    assert [data.countries[label] for label in data.labels] == [s.country for s in data.samples]
    assert (len(data.split.train), len(data.split.val), len(data.split.test)) == (24, 12, 12)
    assert data.class_shares("test").tolist() == pytest.approx([1 / 3] * 3)
    record = data.record()
    assert record == {"file": "tiny.tsv", "sha256": data.sha256, "seed": 0, "val_fraction": 0.25, "test_fraction": 0.25}
    assert str(tiny_tsv.parent) not in str(record)  # a record names the data, never where it lay
    assert SurnameData.from_record(record, tiny_tsv).split == data.split
    assert SurnameData.build(tiny_tsv, 0.25, 0.25, seed=1).split != data.split


def test_from_record_refuses_other_data(tiny_tsv, tmp_path):
    record = SurnameData.build(tiny_tsv, 0.25, 0.25, seed=0).record()
    rows = [(name, country) for country, names in TINY.items() for name in names]
    other = write_tiny(tmp_path / "other.tsv", rows[:-1] + [("Greene", "English")])  # one row differs
    with pytest.raises(DataError, match="not the data this checkpoint was trained on .*--split-data"):
        SurnameData.from_record(record, other)
    with pytest.raises(DataError, match="not the data this checkpoint was trained on"):
        SurnameData.from_record(record)  # the embedded data set is not the tiny one
    two_rows = write_tiny(tmp_path / "two.tsv", [("Ivanov", "Russian"), ("Smith", "English")])
    with pytest.raises(DataError, match="not the data this checkpoint was trained on"):  # not "too few names"
        SurnameData.from_record(record, two_rows)


def test_dataset_dedupe_keeps_each_distinct_name_and_country_once(tmp_path):
    rows = [(name, country) for country, names in TINY.items() for name in names]
    rows += [(name, "Russian") for name in TINY["Russian"]] * 2  # every Russian row three times
    data = SurnameData.build(write_tiny(tmp_path / "dup.tsv", rows), 0.25, 0.25, 0)
    full, deduped = data.dataset("train", ALPHA), data.dataset("train", ALPHA, dedupe=True)
    russian = TINY_COUNTRIES.index("Russian")
    assert len(full) == 8 * 3 + 8 * 2 and len(deduped) == 24
    assert (deduped.labels == russian).sum() == 8 and (full.labels == russian).sum() == 24
    assert data.countries_by_name("train")[data.names[data.split.train[0]]] in (["English"], ["Japanese"], ["Russian"])


# --- several data files ---

def second_file(tmp_path, shared: list[tuple[str, str]]):
    """A second file: 12 new names of each tiny country, a Polish country the first file lacks, and `shared` rows
    whose names are in the first file too."""
    rows = [(f"{country[:3]}ova{i}x", country) for country in TINY for i in range(12)]
    rows += [(f"Kowalsk{'ia'[i % 2]}{i}", "Polish") for i in range(12)] + shared
    path = tmp_path / "more.tsv"
    path.write_text("".join(f"{n}\t{c}\tsource{i % 2}\n" for i, (n, c) in enumerate(rows)), encoding="utf-8")
    return path


def test_a_second_file_never_moves_the_first_files_split_and_a_shared_name_keeps_one_side(tiny_tsv, tmp_path):
    alone = SurnameData.build(tiny_tsv, 0.25, 0.25, seed=0)
    test_name = alone.names[alone.split.test[0]]
    more = second_file(tmp_path, shared=[(test_name, "English"), ("Tanaka", "Russian")])
    both = SurnameData.build([tiny_tsv, more], 0.25, 0.25, seed=0)
    n_first = len(alone.samples)
    for side in ("train", "val", "test"):  # the first file's rows: the same sides as alone
        assert [r for r in getattr(both.split, side) if r < n_first] == getattr(alone.split, side)
    side_of = {}
    for side in ("train", "val", "test"):
        for r in getattr(both.split, side):
            assert side_of.setdefault(both.names[r], side) == side  # every copy of a name on one side
    assert side_of[test_name] == "test"  # the second file's copy follows the first file's
    assert {both.samples[r].origin for r in both.split.test} >= {"tiny.tsv", "source0", "source1"}
    assert "Polish" in both.countries and any(both.countries[both.labels[r]] == "Polish" for r in both.split.test)


def test_several_files_are_recorded_by_name_and_rebuilt(tiny_tsv, tmp_path):
    more = second_file(tmp_path, shared=[])
    data = SurnameData.build([tiny_tsv, more], 0.25, 0.25, seed=0)
    record = data.record()
    assert record["file"] == "tiny.tsv+more.tsv" and record["files"] == ["tiny.tsv", "more.tsv"]
    assert SurnameData.from_record(record, [tiny_tsv, more]).split == data.split
    with pytest.raises(DataError, match="not the data this checkpoint was trained on"):
        SurnameData.from_record(record, [more, tiny_tsv])  # the order is part of the data


def test_presets_name_the_tutorial_data_and_the_real_surname_corpus():
    from config.config import CORPUS

    assert data_files("tutorial") == [DEFAULT_DATA]
    assert data_files(["real"]) == [DEFAULT_DATA, CORPUS]
    with pytest.raises(DataError, match="named twice"):
        data_files(["real", str(DEFAULT_DATA)])


def test_a_country_too_small_to_split_in_a_later_file_trains_on_its_names(tiny_tsv, tmp_path):
    more = tmp_path / "few.tsv"
    more.write_text("Nguyen\tVietnamese\nTran\tVietnamese\n", encoding="utf-8")
    data = SurnameData.build([tiny_tsv, more], 0.25, 0.25, seed=0)
    assert sorted(data.names[r] for r in data.split.train if r >= len(TINY) * 16) == ["Nguyen", "Tran"]


def full_path_normalise(name: str) -> str:
    """normalise as it was before the ASCII shortcut: every name through the full transliteration."""
    tidied = data_module._transliterate(name[: MAX_NAME_LENGTH * 4])
    return tidied.title() if tidied.islower() or tidied.isupper() else tidied


ASCII_TEXT = st.text(st.characters(max_codepoint=127), max_size=60)  # control characters, tabs, digits, symbols
NAME_LIKE = st.text(st.sampled_from(string.ascii_letters + " \t\n\x0b\x0c\r\x1c\x1f\x00\x07\x7f'-.0123456789$+<=>^`|~"),
                    max_size=30)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(ASCII_TEXT, NAME_LIKE, st.text(max_size=60), st.text(st.characters(max_codepoint=0x3ff))))
@example("lucy")
@example("NAKAMURA")
@example("McDonald")
@example("  O'Neal \t")
@example("a\x1cB")
@example("\x07\x00")
@example("$MITH")
@example("o'neal-2")
@example("")
@example("a" * (MAX_NAME_LENGTH * 4 + 5) + "\x7f$")
@example("Ab\x85c")
def test_the_ascii_shortcut_of_normalise_equals_the_full_path(text):
    assert normalise(text) == full_path_normalise(text)
    if text.isascii():
        assert data_module._tidy_ascii(text) == data_module._transliterate(text)
    assert bool(data_module._ASCII_LETTER.search(text)) == any(ch.isascii() and ch.isalpha() for ch in text)


def full_check_name(raw: str) -> str:
    """check_name as it was before its shortcut for names of ASCII letters: every check, in order."""
    if len(raw) > MAX_NAME_LENGTH * 4:
        raise InvalidNameError("too long to read")
    name = normalise(raw)
    if not raw.strip() or not data_module._ASCII_LETTER.search(name) or len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError("empty, letter-less or too long")
    return name


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(st.sampled_from(string.ascii_letters), max_size=MAX_NAME_LENGTH + 3),
                 st.text(st.sampled_from(string.ascii_lowercase), min_size=MAX_NAME_LENGTH - 1, max_size=MAX_NAME_LENGTH + 1),
                 NAME_LIKE, ASCII_TEXT, st.text(max_size=30)))
@example("Nakamura")
@example("lucy")
@example("NAKAMURA")
@example("Ab" * MAX_NAME_LENGTH)
@example("ÄB")
def test_the_shortcut_of_check_name_equals_every_check(text):
    try:
        expected = full_check_name(text)
    except InvalidNameError:
        with pytest.raises(InvalidNameError):
            check_name(text)
    else:
        assert check_name(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.one_of(NAME_LIKE, st.text(st.sampled_from(ALPHABET + "-/1é"), max_size=20), st.text(max_size=20)))
def test_unknown_chars_are_the_characters_outside_the_alphabet(text):
    assert ALPHA.unknown_chars(text) == sorted(set(text) - set(ALPHABET))


def test_numerals_other_than_ascii_digits_are_dropped_like_symbols():
    assert normalise("Ⅻ Smith½") == "Smith" and normalise("Louis XIV") == "Louis XIV"
    assert normalise("Smith\x07") == "Smith" and normalise("O'Brien-2") == "O'Brien-2"


def test_a_data_path_that_is_a_device_or_missing_is_named_so(tmp_path):
    with pytest.raises(DataError, match="/dev/zero is not a regular file or folder; pass --data"):
        load_samples("/dev/zero")  # read as a TSV it would never end
    with pytest.raises(DataError, match="nowhere.tsv: no such file or folder"):
        load_samples(tmp_path / "nowhere.tsv")

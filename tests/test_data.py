import collections

import pytest

from utils.data import countries_of, load_samples
from utils.errors import DataError
from utils.split import grouped_split
from utils.text import normalise


def test_tsv_and_folder_layouts_give_the_same_rows(tiny_tsv, tiny_folder):
    from_tsv = sorted((s.name, s.country) for s in load_samples(tiny_tsv))
    from_folder = sorted((s.name, s.country) for s in load_samples(tiny_folder))
    assert from_tsv == from_folder
    assert countries_of(load_samples(tiny_folder)) == ["English", "Japanese", "Russian"]


def test_blank_lines_are_skipped_and_labels_sorted(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("\nZhang\tChinese\n\n   \nAbe\tJapanese\r\nAdams\tEnglish\n", encoding="utf-8")
    samples = load_samples(path)
    assert [(s.name, s.country) for s in samples] == [("Zhang", "Chinese"), ("Abe", "Japanese"), ("Adams", "English")]
    assert countries_of(samples) == ["Chinese", "English", "Japanese"]
    assert samples[1].source == f"{path}:5"


@pytest.mark.parametrize("line, problem", [
    ("Smith English", "expected 'name<TAB>country'"),
    ("\tEnglish", "empty name"),
    ("Smith\t ", "empty country"),
    ("Smith\tEnglish\textra", "expected 'name<TAB>country'"),
])
def test_malformed_tsv_line_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.tsv"
    path.write_text(f"Abe\tJapanese\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{path}:2: {problem}"):
        load_samples(path)


def test_undecodable_bytes_name_file_and_line(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "German.txt").write_bytes("Müller\nSchmidt\n".encode("utf-8") + b"M\xfcller\n")
    with pytest.raises(DataError, match=r"German.txt:3: not valid UTF-8"):
        load_samples(folder)


def test_missing_data_says_to_pass_data(tmp_path):
    with pytest.raises(DataError, match="--data"):
        load_samples(tmp_path / "nowhere.tsv")


def _labelled(shared_data):
    samples = load_samples(shared_data / "names.tsv")
    countries = countries_of(samples)
    names = [normalise(s.name) for s in samples]
    labels = [countries.index(s.country) for s in samples]
    return names, labels, countries


def test_full_data_set_reads_in_both_layouts(shared_data):
    tsv, folder = load_samples(shared_data / "names.tsv"), load_samples(shared_data / "names")
    assert len(tsv) == len(folder) == 20050
    assert collections.Counter((s.name, s.country) for s in tsv) == collections.Counter((s.name, s.country) for s in folder)
    assert len(countries_of(tsv)) == 18


def test_split_keeps_every_copy_of_a_name_on_one_side_and_every_country_everywhere(shared_data):
    names, labels, countries = _labelled(shared_data)
    split = grouped_split(names, labels, val_fraction=0.1, test_fraction=0.1, seed=0)
    parts = [split.train, split.val, split.test]
    assert sorted(r for part in parts for r in part) == list(range(len(names)))
    sides = [{names[r] for r in part} for part in parts]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    for part in parts[1:]:
        assert {labels[r] for r in part} == set(range(len(countries)))  # stratified: every country on every side
    russian = countries.index("Russian")
    share = sum(labels[r] == russian for r in split.test) / len(split.test)
    assert 0.40 < share < 0.55  # ~47% of all rows


def test_split_is_reproducible_and_seeded(shared_data):
    names, labels, _ = _labelled(shared_data)
    first = grouped_split(names, labels, 0.1, 0.1, seed=3)
    assert grouped_split(names, labels, 0.1, 0.1, seed=3) == first
    assert grouped_split(names, labels, 0.1, 0.1, seed=4).test != first.test

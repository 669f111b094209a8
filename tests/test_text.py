import pytest
import torch

from config.config import ALPHABET
from utils.errors import InvalidNameError
from utils.text import Alphabet, check_name, normalise


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


def test_alphabet_is_the_original_57_letters_plus_an_unknown_slot():
    alphabet = Alphabet(ALPHABET)
    assert len(ALPHABET) == 57
    assert alphabet.size == 58
    assert alphabet.encode("Ab'").tolist() == [ALPHABET.index("A"), ALPHABET.index("b"), ALPHABET.index("'")]


def test_one_hot_shape_and_unknown_slot():
    alphabet = Alphabet(ALPHABET)
    x = alphabet.one_hot("Lu:1")
    assert x.shape == (4, alphabet.size) and x.dtype == torch.float32
    assert torch.equal(x.sum(dim=1), torch.ones(4))  # exactly one slot lit per letter, never none
    assert x[2, alphabet.unknown_index] == 1 and x[3, alphabet.unknown_index] == 1
    assert x[0, ALPHABET.index("L")] == 1
    assert alphabet.unknown_chars("Maxa/B-1") == ["-", "/", "1"]


@pytest.mark.parametrize("raw", ["", "   ", "123", "-/:", "\t"])
def test_check_name_rejects_empty_and_letterless_names(raw):
    with pytest.raises(InvalidNameError):
        check_name(raw)


def test_check_name_accepts_a_name_with_some_letters():
    assert check_name("Maxa/B") == "Maxa/B"
    assert check_name("Ямада") == "Yamada"

"""Name normalisation and letter encoding, shared by training and prediction."""
import re

import torch
from anyascii import anyascii

from utils.errors import InvalidNameError

_SPACES = re.compile(r"\s+")


def normalise(name: str) -> str:
    """Transliterate to ASCII ('Müller' -> 'Muller', 'Горбачёв' -> 'Gorbachev') and tidy whitespace.

    A name typed all in lower or all in upper case is title-cased, because the data writes
    surnames that way ('lucy' -> 'Lucy') and the encoding keeps case.
    """
    ascii_name = _SPACES.sub(" ", anyascii(name)).strip()
    if ascii_name.islower() or ascii_name.isupper():
        ascii_name = ascii_name.title()
    return ascii_name


class Alphabet:
    """Letter <-> index, with one extra index for every character outside the alphabet."""

    def __init__(self, letters: str):
        if len(set(letters)) != len(letters):
            raise ValueError("alphabet letters must be distinct")
        self.letters = letters
        self.unknown_index = len(letters)
        self._index = {letter: i for i, letter in enumerate(letters)}

    @property
    def size(self) -> int:
        """Width of a one-hot letter: the letters plus the unknown slot."""
        return len(self.letters) + 1

    def unknown_chars(self, text: str) -> list[str]:
        return sorted({ch for ch in text if ch not in self._index})

    def encode(self, text: str) -> torch.Tensor:
        """Letter indices, [len(text)] int64; unknown characters get `unknown_index`."""
        return torch.tensor([self._index.get(ch, self.unknown_index) for ch in text], dtype=torch.long)

    def one_hot(self, text: str) -> torch.Tensor:
        """The original project's encoding of a name: [len(text), size] float32."""
        return torch.nn.functional.one_hot(self.encode(text), self.size).float()


def check_name(raw: str) -> str:
    """Normalise a name for prediction, or raise InvalidNameError if nothing classifiable is left."""
    name = normalise(raw)
    if not name:
        raise InvalidNameError(f"empty name {raw!r}")
    if not any(ch.isascii() and ch.isalpha() for ch in name):
        raise InvalidNameError(f"name {raw!r} has no letters")
    return name

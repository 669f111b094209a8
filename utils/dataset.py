"""Names as tensors: a one-hot Dataset, and length-bucketed batches for a DataLoader."""
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler

from utils.text import Alphabet


def encode_names(names: list[str], alphabet: Alphabet) -> tuple[torch.Tensor, torch.Tensor]:
    """Letter indices of many names at once: (letters [N, T_max] zero-padded, lengths [N]).

    Row i equals `alphabet.encode(names[i])` followed by padding, but the letters are looked up
    in one tensor operation over all code points instead of a Python loop per name.
    """
    lengths = torch.tensor([len(name) for name in names], dtype=torch.long)  # [N]
    width = int(lengths.max()) if len(names) else 0
    letters = torch.zeros(len(names), width, dtype=torch.long)  # [N, T_max]
    text = "".join(names)
    if not text:
        return letters, lengths
    codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()  # [sum(lengths)]
    table = torch.full((max(map(ord, alphabet.letters), default=0) + 1,), alphabet.unknown_index, dtype=torch.long)
    table[[ord(letter) for letter in alphabet.letters]] = torch.arange(len(alphabet.letters))
    known = codes < len(table)
    indices = torch.where(known, table[codes.clamp(max=len(table) - 1)], alphabet.unknown_index)  # [sum(lengths)]
    # row-major boolean indexing visits the cells name by name, letter by letter: the order of `text`
    letters[torch.arange(width) < lengths[:, None]] = indices
    return letters, lengths


def drop_letters(letters: torch.Tensor, p: float, unknown_index: int) -> torch.Tensor:
    """letters [B, T] with each one replaced by the unknown slot with probability p (a training-time
    augmentation: the model cannot lean on any single letter, and sees names a little differently
    each epoch). Uses torch's global generator, so a seeded run draws the same letters."""
    if p == 0:
        return letters
    return letters.masked_fill(torch.rand(letters.shape, device=letters.device) < p, unknown_index)


class NamesDataset(Dataset):
    """Encoded names and country labels.

    `dataset[i]` is the original project's item: (one-hot [length, n_letters], label).
    `dataset.__getitems__(rows)` is what a DataLoader calls for a whole batch: letter indices
    [B, T] padded to the batch's longest name, lengths [B] and labels [B], cut from tensors built
    once here, so no per-name Python runs while training.
    """

    def __init__(self, names: list[str], labels: list[int], alphabet: Alphabet):
        if len(names) != len(labels):
            raise ValueError("names and labels differ in length")
        if any(not name for name in names):
            raise ValueError("empty name")
        self.alphabet = alphabet
        self.letters, self.lengths = encode_names(names, alphabet)  # [N, T_max], [N]
        self.labels = torch.tensor(labels, dtype=torch.long)  # [N]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        letters = self.letters[i, : self.lengths[i]]
        return torch.nn.functional.one_hot(letters, self.alphabet.size).float(), int(self.labels[i])

    def __getitems__(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(rows, dtype=torch.long)
        lengths = self.lengths[rows]  # [B]
        letters = self.letters[rows, : int(lengths.max())]  # [B, T]
        return letters, lengths, self.labels[rows]


def collate_one_hot(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference batching of one-hot items: zero-padded [B, T, n_letters], lengths [B], labels [B]."""
    one_hots, labels = zip(*items)
    lengths = torch.tensor([len(x) for x in one_hots], dtype=torch.long)
    return pad_sequence(list(one_hots), batch_first=True), lengths, torch.tensor(labels, dtype=torch.long)


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of names of one length, so a batch needs no padding; shuffled per epoch when asked."""

    def __init__(self, lengths: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.lengths, self.batch_size, self.shuffle = lengths, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def _batches(self, generator=None) -> list[list[int]]:
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
        yield from self._batches(self.generator if self.shuffle else None)

    def __len__(self) -> int:
        return len(self._batches())


def _batch_as_is(batch):
    return batch


def batch_loader(dataset: NamesDataset, batch_sampler: Sampler[list[int]]) -> DataLoader:
    """A DataLoader whose batches come whole from `dataset.__getitems__`, so nothing is collated per name."""
    return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=_batch_as_is)


def make_loader(dataset: NamesDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader of (letters [B, T], lengths [B], labels [B]) batches of equal-length names."""
    return batch_loader(dataset, LengthBucketSampler(dataset.lengths, batch_size, shuffle, seed))

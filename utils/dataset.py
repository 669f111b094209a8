"""Names as tensors: a one-hot Dataset, and length-bucketed batches for a DataLoader."""
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler

from utils.text import Alphabet


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
        encoded = [alphabet.encode(name) for name in names]
        self.lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)  # [N]
        self.letters = pad_sequence(encoded, batch_first=True)  # [N, T_max]
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


def make_loader(dataset: NamesDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader of (letters [B, T], lengths [B], labels [B]) batches of equal-length names."""
    sampler = LengthBucketSampler(dataset.lengths, batch_size, shuffle, seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=_batch_as_is)

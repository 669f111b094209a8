import random

import pytest
import torch

from config.config import ALPHABET, CELLS
from models.classifier import ModelArgs, NameClassifier
from utils.dataset import LengthBucketSampler, NamesDataset, collate_one_hot, make_loader
from utils.text import Alphabet

ALPHA = Alphabet(ALPHABET)


def random_names(n, seed=0):
    rng = random.Random(seed)
    letters = ALPHABET + "-/1é"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(1, 12))) for _ in range(n)]


@pytest.fixture
def dataset():
    names = random_names(40)
    return NamesDataset(names, [i % 5 for i in range(len(names))], ALPHA)


def test_item_is_the_one_hot_of_the_name(dataset):
    names = random_names(40)
    x, label = dataset[7]
    assert x.shape == (len(names[7]), ALPHA.size)
    assert torch.equal(x, ALPHA.one_hot(names[7])) and label == 7 % 5


def test_batched_fetch_matches_the_reference_collate(dataset):
    rows = [3, 0, 17, 25, 9]
    letters, lengths, labels = dataset.__getitems__(rows)
    ref_x, ref_lengths, ref_labels = collate_one_hot([dataset[r] for r in rows])
    assert torch.equal(lengths, ref_lengths) and torch.equal(labels, ref_labels)
    mask = torch.arange(letters.shape[1])[None, :] < lengths[:, None]  # [B, T] real letters
    one_hot = torch.nn.functional.one_hot(letters, ALPHA.size).float() * mask[..., None]
    assert torch.equal(one_hot, ref_x)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_padded_packed_batch_equals_one_name_at_a_time(dataset, cell, layers, bidirectional):
    torch.manual_seed(0)
    model = NameClassifier(ModelArgs(cell, ALPHA.size, 5, hidden_size=16, num_layers=layers,
                                     bidirectional=bidirectional)).eval()
    rows = list(range(len(dataset)))
    x, lengths, _ = collate_one_hot([dataset[r] for r in rows])  # [B, T, n_letters], mixed lengths
    batched = model(x, lengths)
    assert batched.shape == (len(rows), 5)
    one_by_one = torch.cat([model(dataset[r][0][None], torch.tensor([len(dataset[r][0])])) for r in rows])
    torch.testing.assert_close(batched, one_by_one)
    letters, lengths, _ = dataset.__getitems__(rows)  # the index path used in training
    torch.testing.assert_close(model(letters, lengths), one_by_one)


def test_bucket_sampler_covers_every_row_once_in_one_length_batches(dataset):
    sampler = LengthBucketSampler(dataset.lengths, batch_size=4, shuffle=True, seed=1)
    batches = list(sampler)
    assert sorted(r for b in batches for r in b) == list(range(len(dataset)))
    assert all(len(b) <= 4 and len({int(dataset.lengths[r]) for r in b}) == 1 for b in batches)
    assert len(sampler) == len(batches)
    assert list(sampler) != batches  # a new order each epoch


def test_loader_yields_index_batches(dataset):
    for letters, lengths, labels in make_loader(dataset, batch_size=8, shuffle=False):
        assert letters.dtype == torch.long and letters.shape == (len(labels), int(lengths[0]))
        assert (lengths == lengths[0]).all()


def test_model_sizes_come_from_its_arguments():
    model = NameClassifier(ModelArgs("lstm", n_letters=11, n_countries=3, hidden_size=7, bidirectional=True))
    assert model.rnn.input_size == 11 and model.head.out_features == 3 and model.head.in_features == 14
    with pytest.raises(ValueError, match="unknown cell"):
        NameClassifier(ModelArgs("transformer", 11, 3))

import io
import random

import pytest
import torch

from config.config import ALPHABET
from models.transformer import CharTransformer, TransformerArgs
from utils.data import Alphabet

ALPHA = Alphabet(ALPHABET)
N_COUNTRIES = 5


def small_model(pool="last", block_size=32, seed=0, dropout=0.1) -> CharTransformer:
    torch.manual_seed(seed)
    return CharTransformer(TransformerArgs(ALPHA.size, N_COUNTRIES, block_size=block_size, n_layer=2, n_head=4,
                                           n_embd=32, dropout=dropout, pool=pool)).eval()


def random_names(n, seed=0, longest=12):
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET + "-é") for _ in range(rng.randint(1, longest))) for _ in range(n)]


def logits_one_by_one(model, names):
    return torch.cat([model(ALPHA.encode(name)[None], torch.tensor([len(name)])) for name in names])


def test_later_letters_leave_earlier_hidden_states_unchanged():
    model = small_model()
    letters = ALPHA.encode("Kowalski")[None]  # [1, 8]
    lengths = torch.tensor([8])
    changed = letters.clone()
    changed[0, 5:] = ALPHA.encode("xyz")  # "Kowalxyz"
    before, after = model.hidden_states(letters, lengths), model.hidden_states(changed, lengths)  # [1, 8, C]
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])  # the changed positions do see their own letters


def test_last_pool_of_a_prefix_equals_its_hidden_state_in_the_whole_name():
    model = small_model("last")
    name = "Nakamura"
    whole = model.hidden_states(ALPHA.encode(name)[None], torch.tensor([len(name)]))  # [1, 8, C]
    for k in range(1, len(name) + 1):
        prefix = model.hidden_states(ALPHA.encode(name[:k])[None], torch.tensor([k]))  # [1, k, C]
        torch.testing.assert_close(prefix[0, -1], whole[0, k - 1])


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_padded_batch_gives_each_names_logits_alone(pool):
    model = small_model(pool)
    names = random_names(30)
    letters, lengths = ALPHA.encode_many(names)  # [30, T_max], zero-padded: index 0 is a real letter ('a')
    assert (lengths < letters.shape[1]).any()
    batched = model(letters, lengths)
    assert batched.shape == (len(names), N_COUNTRIES)
    torch.testing.assert_close(batched, logits_one_by_one(model, names))
    # other padding values must not matter either
    noisy = letters.clone()
    pad = torch.arange(letters.shape[1]) >= lengths[:, None]  # [30, T_max]
    noisy[pad] = torch.randint(0, ALPHA.size, (int(pad.sum()),))
    torch.testing.assert_close(model(noisy, lengths), batched)


def test_last_and_mean_pool_read_different_things():
    last, mean = small_model("last"), small_model("mean")
    mean.load_state_dict(last.state_dict())  # same weights, only the pooling differs
    letters, lengths = ALPHA.encode_many(["Nakamura", "Li"])
    assert not torch.allclose(last(letters, lengths), mean(letters, lengths))


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_state_dict_round_trip_gives_identical_logits(pool):
    model = small_model(pool, seed=1)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    copy = small_model(pool, seed=2)
    letters, lengths = ALPHA.encode_many(random_names(20, seed=3))
    assert not torch.equal(copy(letters, lengths), model(letters, lengths))
    copy.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(copy(letters, lengths), model(letters, lengths))


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_a_name_longer_than_block_size_is_read_by_its_last_letters(pool):
    model = small_model(pool, block_size=6)
    long_name, tail = "Wolfeschlegel", "hlegel"  # 13 letters; the last 6
    alone = model(ALPHA.encode(long_name)[None], torch.tensor([len(long_name)]))
    torch.testing.assert_close(alone, model(ALPHA.encode(tail)[None], torch.tensor([len(tail)])))
    # the same inside a padded batch beside names that fit, which are read whole
    names = [long_name, "Li", "Nakamura", "Smith"]
    letters, lengths = ALPHA.encode_many(names)
    expected = logits_one_by_one(model, [tail, "Li", "kamura", "Smith"])  # "Nakamura" is 8 > 6 letters too
    torch.testing.assert_close(model(letters, lengths), expected)
    assert model.hidden_states(letters, lengths).shape[1] == 6


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="pool"):
        CharTransformer(TransformerArgs(ALPHA.size, N_COUNTRIES, pool="max"))
    with pytest.raises(ValueError, match="multiple"):
        CharTransformer(TransformerArgs(ALPHA.size, N_COUNTRIES, n_embd=30, n_head=4))

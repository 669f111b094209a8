"""models/: the family interface, the fast RNN path against nn.RNN, padded and bucketed batches against the
one-hot reference, and several checkpoints predicting together (models/predictor.py)."""
import random
import string
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F

from config.config import ALPHABET, TrainConfig
from models import FAMILIES, build_model, fast_rnn, is_counted, model_args
from models.predictor import Predictor
from models.rnn import RNNArgs, RNNClassifier
from tests.conftest import TINY_COUNTRIES, last_letter_payload
from models import checkpoint as ckpt
from utils.data import Alphabet, NamesDataset, make_loader
from utils.errors import CheckpointError

ALPHA = Alphabet(ALPHABET)
COUNTRIES = [f"country{i}" for i in range(7)]
N_LETTERS, N_COUNTRIES = ALPHA.size, 5


def random_names(n: int, seed: int) -> list[str]:
    """Names of 1-14 characters, mostly alphabet letters, some outside it ('-', 'é', '1', '中')."""
    rng = random.Random(seed)
    pool = string.ascii_letters * 3 + " .,;'" + "-é1中"
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 14))) for _ in range(n)]


def as_checkpoint(model: RNNClassifier, path) -> str:
    """`model` saved as a checkpoint of the 7 made-up countries, no offset, temperature 1."""
    uniform = [1 / len(COUNTRIES)] * len(COUNTRIES)
    record = {"file": "none.tsv", "sha256": "0" * 64, "seed": 0, "val_fraction": 0.1, "test_fraction": 0.1}
    return ckpt.save({"family": model.args.cell, "model_args": asdict(model.args), "model_state": model.state_dict(),
                      "alphabet": ALPHA.letters, "countries": COUNTRIES, "train_prior": uniform,
                      "logit_offset": [0.0] * len(COUNTRIES), "temperature": 1.0, "data": record, "config": {}}, path)


def reference_logits(model: torch.nn.Module, names: list[str]) -> torch.Tensor:
    """The documented slow path: one-hot letters padded to the longest name, packed by the model, all at once."""
    one_hot = torch.nn.utils.rnn.pad_sequence([F.one_hot(ALPHA.encode(n), ALPHA.size).float() for n in names],
                                              batch_first=True)  # [N, T, n_letters]
    with torch.inference_mode():
        return model.eval()(one_hot, torch.tensor([len(n) for n in names]))


# --- the family interface ---

TRAINED_ALONE = [family for family, (_, _, from_config) in FAMILIES.items() if from_config]  # not "mix"


@pytest.mark.parametrize("family", TRAINED_ALONE)
def test_every_family_builds_from_model_args_and_gives_one_row_of_logits_per_name(family):
    cfg = replace(TrainConfig(), hidden_size=8, dropout=0.1, ngram_order=2)
    args = model_args(family, cfg, ALPHABET, N_COUNTRIES)
    assert (args.n_letters, args.n_countries) == (ALPHA.size, N_COUNTRIES)  # sizes from the data
    torch.manual_seed(0)
    model = build_model(family, asdict(args))  # from a dict, as a checkpoint stores the args
    names = ["Tanaka", "Li", "O'Neill", "Abe", "Ivanov"]
    letters, lengths = ALPHA.encode_many(names)  # [5, 7] padded, mixed lengths
    if is_counted(model):
        model.fit(letters, lengths, torch.arange(N_COUNTRIES))  # one name of each country
    elif family in ("rnn", "lstm", "gru"):
        assert args.hidden_size == 8 and args.bidirectional
    model.eval()
    logits = model(letters, lengths)
    assert logits.shape == (5, N_COUNTRIES) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    for i, name in enumerate(names):  # a name's logits do not depend on its batch or its padding
        alone = model(ALPHA.encode(name)[None], torch.tensor([len(name)]))
        torch.testing.assert_close(alone[0], logits[i])


def test_model_args_take_the_data_sizes_the_fixed_cell_and_the_rest_from_the_config():
    cfg = replace(TrainConfig(), hidden_size=7, num_layers=2, bidirectional=False, dropout=0.25)
    assert model_args("lstm", cfg, "abcdefghij", 3) == RNNArgs("lstm", 11, 3, hidden_size=7, num_layers=2,
                                                               bidirectional=False, dropout=0.25)
    model = build_model("lstm", asdict(model_args("lstm", replace(cfg, bidirectional=True), "abcdefghij", 3)))
    assert model.rnn.input_size == 11 and model.head.out_features == 3 and model.head.in_features == 14
    with pytest.raises(ValueError, match="unknown cell"):
        RNNClassifier(RNNArgs("transformer", 11, 3))


# --- batches of mixed lengths against one name at a time ---

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_padded_packed_and_bucketed_batches_equal_one_name_at_a_time(cell, layers, bidirectional):
    torch.manual_seed(0)
    model = RNNClassifier(RNNArgs(cell, ALPHA.size, 5, hidden_size=16, num_layers=layers,
                                  bidirectional=bidirectional)).eval()
    names = random_names(40, seed=0)
    one_by_one = torch.cat([reference_logits(model, [name]) for name in names])
    torch.testing.assert_close(reference_logits(model, names), one_by_one)  # one-hot, padded and packed
    letters, lengths = ALPHA.encode_many(names)  # letter indices, padded: the path of a mixed batch
    torch.testing.assert_close(model(letters, lengths), one_by_one)


@pytest.mark.parametrize("args", [
    RNNArgs("rnn", ALPHA.size, len(COUNTRIES), hidden_size=32),
    RNNArgs("rnn", ALPHA.size, len(COUNTRIES), hidden_size=32, bidirectional=True),
    RNNArgs("lstm", ALPHA.size, len(COUNTRIES), hidden_size=32),
    RNNArgs("gru", ALPHA.size, len(COUNTRIES), hidden_size=32, num_layers=2, bidirectional=True),
], ids=["rnn", "rnn-bidirectional", "lstm", "gru-2-layers-bidirectional"])
def test_fast_paths_give_the_reference_logits(args, tmp_path):
    torch.manual_seed(0)
    model = RNNClassifier(args).eval()
    names = random_names(200, seed=2)
    expected = reference_logits(model, names)  # [N, n_countries]

    # prediction: Predictor encodes all names at once and runs one-length batches (small ones here)
    predictor = Predictor.from_checkpoint(as_checkpoint(model, tmp_path / "model.bin"))
    torch.testing.assert_close(predictor.log_probabilities(names, batch_size=16), torch.log_softmax(expected, dim=1),
                               atol=1e-5, rtol=1e-5)
    predictions = predictor.predict([n for n in names[:60] if any(ch.isascii() and ch.isalpha() for ch in n)])
    chosen = reference_logits(model, [p.normalised for p in predictions]).argmax(dim=1).tolist()
    assert [p.country for p in predictions] == [COUNTRIES[i] for i in chosen]

    # training: the length-bucketed loader's index batches, fed to the model as train.py does
    dataset = NamesDataset(names, list(range(len(names))), ALPHA)  # labels = row numbers, to find each row
    got = torch.empty_like(expected)
    with torch.inference_mode():
        for letters, lengths, rows in make_loader(dataset, batch_size=32, shuffle=True, seed=3):
            assert bool((lengths == lengths[0]).all())
            got[rows] = model(letters, lengths)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# --- models/fast_rnn.py against nn.RNN ---

def nn_rnn_forward(model: RNNClassifier, letters: torch.Tensor) -> torch.Tensor:
    """The model on one-hot input, which goes through nn.RNN itself."""
    one_hot = F.one_hot(letters, N_LETTERS).float()  # [B, T, n_letters]
    assert not fast_rnn.can_run(model.rnn, one_hot)
    return model(one_hot, torch.full((len(letters),), letters.shape[1]))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "bidirectional"])
@pytest.mark.parametrize("length", [1, 2, 9])
def test_fast_rnn_logits_and_gradients_match_nn_rnn(bidirectional, length):
    torch.manual_seed(length)
    model = RNNClassifier(RNNArgs("rnn", N_LETTERS, N_COUNTRIES, hidden_size=16, bidirectional=bidirectional))
    letters = torch.randint(0, N_LETTERS, (12, length))  # [B, T]
    labels = torch.randint(0, N_COUNTRIES, (12,))
    assert fast_rnn.can_run(model.rnn, letters)

    def logits_and_grads(forward):
        model.zero_grad()
        logits = forward()
        F.cross_entropy(logits, labels).backward()
        return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    fast, fast_grads = logits_and_grads(lambda: model(letters, torch.full((12,), length)))
    ref, ref_grads = logits_and_grads(lambda: nn_rnn_forward(model, letters))
    assert torch.allclose(fast, ref, atol=1e-5)
    assert fast_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert torch.allclose(fast_grads[name], ref_grads[name], atol=1e-5), name
    assert ref_grads["rnn.weight_hh_l0"].abs().sum() > 0 or length == 1  # the recurrent gradient was exercised


def test_fast_rnn_recurrence_passes_gradcheck():
    torch.manual_seed(0)
    letters = torch.randint(0, 6, (4, 3))  # [T, B]
    rows = torch.randn(6, 5, dtype=torch.double, requires_grad=True)  # [n_letters, H]
    weight = torch.randn(5, 5, dtype=torch.double, requires_grad=True)  # [H, H]
    assert torch.autograd.gradcheck(fast_rnn.TanhRecurrence.apply, (letters, rows, weight))


def test_other_models_and_inputs_keep_the_torch_path():
    letters = torch.zeros(2, 3, dtype=torch.long)
    for args in (RNNArgs("gru", N_LETTERS, N_COUNTRIES), RNNArgs("lstm", N_LETTERS, N_COUNTRIES),
                 RNNArgs("rnn", N_LETTERS, N_COUNTRIES, num_layers=2)):
        assert not fast_rnn.can_run(RNNClassifier(args).rnn, letters)


def test_training_uses_fused_adam_that_matches_the_plain_one():
    from utils.training import make_optimizer

    torch.manual_seed(0)
    model = RNNClassifier(RNNArgs("rnn", N_LETTERS, N_COUNTRIES, hidden_size=8))
    twin = RNNClassifier(RNNArgs("rnn", N_LETTERS, N_COUNTRIES, hidden_size=8))
    twin.load_state_dict(model.state_dict())
    fused = make_optimizer(model, 1e-2, torch.device("cpu"))
    plain = torch.optim.Adam(twin.parameters(), lr=1e-2)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    letters, labels = torch.randint(0, N_LETTERS, (6, 4)), torch.randint(0, N_COUNTRIES, (6,))
    for net, optimizer in ((model, fused), (twin, plain)):
        for _ in range(3):
            optimizer.zero_grad()
            F.cross_entropy(net(letters, torch.full((6,), 4)), labels).backward()
            optimizer.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


# --- several checkpoints predicting together ---

def own_probabilities(path, names: list[str]) -> torch.Tensor:
    """One checkpoint's probabilities computed here, not by Predictor: its model on one name at a time,
    plus its offset, over its temperature, softmaxed. [N, n_countries]"""
    payload = ckpt.load(path)
    model = ckpt.build_model(payload)
    alphabet = Alphabet(payload["alphabet"])
    rows = []
    with torch.no_grad():
        for name in names:
            logits = model(alphabet.encode(name)[None], torch.tensor([len(name)]))[0]  # [n_countries]
            logits = (logits + torch.tensor(payload["logit_offset"])) / payload["temperature"]
            rows.append(torch.softmax(logits, dim=0))
    return torch.stack(rows)


def test_several_checkpoints_predict_with_the_mean_of_their_probabilities(tiny_checkpoint, tiny_checkpoint_data,
                                                                          tmp_path):
    hand = last_letter_payload(tiny_checkpoint_data)
    a = ckpt.save({**hand, "logit_offset": [0.5, 0.0, -0.25], "temperature": 2.0}, tmp_path / "a.bin")
    b = tiny_checkpoint  # another family (gru), bidirectional, its own offset
    names = ["Nakamura", "Ivanov", "Smith", "White", "Li", "Maxa/B", "Kuznetsova"]
    own_a, own_b = own_probabilities(a, names), own_probabilities(b, names)
    assert (own_a - own_b).abs().max() > 0.05  # the two really disagree, so a mean differs from either

    together = Predictor.from_checkpoints([a, b])
    torch.testing.assert_close(together.probabilities(names), (own_a + own_b) / 2, atol=1e-5, rtol=1e-5)
    alone = Predictor.from_checkpoints([a])
    torch.testing.assert_close(alone.probabilities(names), own_a, atol=1e-5, rtol=1e-5)
    top = together.predict(names, topk=3)
    expected = ((own_a + own_b) / 2).argmax(dim=1).tolist()
    assert [p.country for p in top] == [TINY_COUNTRIES[i] for i in expected]
    assert all(sum(prob for _, prob in p.top) == pytest.approx(1.0, abs=1e-5) for p in top)


def test_checkpoints_of_other_countries_are_refused(tiny_checkpoint, tiny_checkpoint_data, tmp_path):
    other = last_letter_payload(tiny_checkpoint_data)
    other = ckpt.save({**other, "countries": ["English", "French", "Russian"]}, tmp_path / "french.bin")
    reordered = last_letter_payload(tiny_checkpoint_data)
    reordered = ckpt.save({**reordered, "countries": ["Russian", "English", "Japanese"]}, tmp_path / "reordered.bin")
    for path in (other, reordered):
        with pytest.raises(CheckpointError, match="countries differ") as e:
            Predictor.from_checkpoints([tiny_checkpoint, path])
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="at least one"):
        Predictor.from_checkpoints([])

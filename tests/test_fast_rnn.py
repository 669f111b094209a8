"""models/fast_rnn.py: the hand-run RNN recurrence gives nn.RNN's logits and gradients."""
import pytest
import torch
import torch.nn.functional as F

from models import fast_rnn
from models.classifier import ModelArgs, NameClassifier

N_LETTERS, N_COUNTRIES = 58, 5


def reference_forward(model: NameClassifier, letters: torch.Tensor) -> torch.Tensor:
    """The model on one-hot input, which goes through nn.RNN itself."""
    one_hot = F.one_hot(letters, N_LETTERS).float()  # [B, T, n_letters]
    assert not fast_rnn.can_run(model.rnn, one_hot)
    return model(one_hot, torch.full((len(letters),), letters.shape[1]))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "bidirectional"])
@pytest.mark.parametrize("length", [1, 2, 9])
def test_logits_and_gradients_match_nn_rnn(bidirectional, length):
    torch.manual_seed(length)
    model = NameClassifier(ModelArgs("rnn", N_LETTERS, N_COUNTRIES, hidden_size=16, bidirectional=bidirectional))
    letters = torch.randint(0, N_LETTERS, (12, length))  # [B, T]
    labels = torch.randint(0, N_COUNTRIES, (12,))
    assert fast_rnn.can_run(model.rnn, letters)

    def logits_and_grads(forward):
        model.zero_grad()
        logits = forward()
        F.cross_entropy(logits, labels).backward()
        return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    fast, fast_grads = logits_and_grads(lambda: model(letters, torch.full((12,), length)))
    ref, ref_grads = logits_and_grads(lambda: reference_forward(model, letters))
    assert torch.allclose(fast, ref, atol=1e-5)
    assert fast_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert torch.allclose(fast_grads[name], ref_grads[name], atol=1e-5), name
    assert ref_grads["rnn.weight_hh_l0"].abs().sum() > 0 or length == 1  # the recurrent gradient was exercised


def test_recurrence_passes_gradcheck():
    torch.manual_seed(0)
    letters = torch.randint(0, 6, (4, 3))  # [T, B]
    rows = torch.randn(6, 5, dtype=torch.double, requires_grad=True)  # [n_letters, H]
    weight = torch.randn(5, 5, dtype=torch.double, requires_grad=True)  # [H, H]
    assert torch.autograd.gradcheck(fast_rnn.TanhRecurrence.apply, (letters, rows, weight))


def test_other_models_and_inputs_keep_the_torch_path():
    letters = torch.zeros(2, 3, dtype=torch.long)
    for args in (ModelArgs("gru", N_LETTERS, N_COUNTRIES), ModelArgs("lstm", N_LETTERS, N_COUNTRIES),
                 ModelArgs("rnn", N_LETTERS, N_COUNTRIES, num_layers=2)):
        assert not fast_rnn.can_run(NameClassifier(args).rnn, letters)


def test_training_uses_fused_adam_that_matches_the_plain_one():
    from utils.schedule import make_optimizer

    torch.manual_seed(0)
    model = NameClassifier(ModelArgs("rnn", N_LETTERS, N_COUNTRIES, hidden_size=8))
    twin = NameClassifier(ModelArgs("rnn", N_LETTERS, N_COUNTRIES, hidden_size=8))
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

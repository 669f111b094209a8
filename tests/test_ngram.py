"""The character n-gram classifier: smoothed probabilities worked out by hand, normalisation, padding, checkpoints."""
import math

import pytest
import torch

from config.config import ALPHABET
from models.ngram import SMOOTHINGS, NgramArgs, NgramModel, case_fold_table
from tests.conftest import TINY
from utils.data import Alphabet


def encode_names(names: list[str], alphabet: Alphabet):
    return alphabet.encode_many(names)

# A toy corpus over the alphabet "ab" (letters a=0, b=1, unknown=2): country 0 has "ab" and "a", country 1 "b".
# The symbols a name can continue with, W = {a, b, unknown, EOS}: |W| = 4.
TOY = Alphabet("ab")
TOY_NAMES, TOY_LABELS = ["ab", "a", "b"], torch.tensor([0, 0, 1])


def toy_model(**kwargs) -> NgramModel:
    model = NgramModel(NgramArgs(TOY.size, 2, **{"prior_power": 1.0, "scale": 1.0, **kwargs}))
    model.fit(*encode_names(TOY_NAMES, TOY), TOY_LABELS)
    return model


def steps_of_ab(model: NgramModel) -> list[list[float]]:
    """P(a | start), P(b | a), P(EOS | b) of the name "ab", per country."""
    return model.char_log_probs(*encode_names(["ab"], TOY))[0].exp().tolist()


def test_add_k_bigrams_match_the_counts_by_hand():
    model = toy_model(order=2, smoothing="add-k", k=0.5)
    # country 0 reads  ^ab$ ^a$ : count(^a) = 2, count(ab) = 1, count(b$) = 1; contexts ^: 2, a: 2, b: 1
    c0 = [(2 + 0.5) / (2 + 0.5 * 4), (1 + 0.5) / (2 + 0.5 * 4), (1 + 0.5) / (1 + 0.5 * 4)]
    # country 1 reads  ^b$ : count(^a) = 0, context a unseen, count(b$) = 1; contexts ^: 1, b: 1
    c1 = [(0 + 0.5) / (1 + 0.5 * 4), (0 + 0.5) / (0 + 0.5 * 4), (1 + 0.5) / (1 + 0.5 * 4)]
    assert steps_of_ab(model) == [pytest.approx(c0), pytest.approx(c1)]
    # logits: log P("ab" | c) + log prior(c), the prior 2/3 and 1/3 of the rows
    expected = [math.log(math.prod(c0) * 2 / 3), math.log(math.prod(c1) * 1 / 3)]
    assert model(*encode_names(["ab"], TOY))[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_witten_bell_interpolates_with_the_unigram_by_distinct_followers():
    model = toy_model(order=2, smoothing="witten-bell")
    # country 0's unigrams: a 2, b 1, EOS 2 (5 in all, 3 distinct), each mixed with the uniform 1/4
    uni = {w: (c + 3 * (1 / 4)) / (5 + 3) for w, c in {"a": 2, "b": 1, "$": 2}.items()}
    # contexts ^: 2 seen, 1 distinct follower; a: 2 seen, 2 distinct (b, EOS); b: 1 seen, 1 distinct
    c0 = [(2 + 1 * uni["a"]) / (2 + 1), (1 + 2 * uni["b"]) / (2 + 2), (1 + 1 * uni["$"]) / (1 + 1)]
    assert steps_of_ab(model)[0] == pytest.approx(c0)


def test_kneser_ney_uses_continuation_counts_below_the_full_order():
    d = 0.5
    model = toy_model(order=3, smoothing="kneser-ney", discount=d)
    # country 0 reads  ^^ab$ ^^a$ : trigrams ^^a 2, ^ab 1, ab$ 1, ^a$ 1
    # unigrams by distinct left neighbours in the bigrams ^a, ab, b$, a$: a 1, b 1, EOS 2 (4 in all, 3 types)
    uni = {w: max(c - d, 0) / 4 + d * 3 / 4 * (1 / 4) for w, c in {"a": 1, "b": 1, "$": 2}.items()}
    # bigrams: ^a starts at the start marker, so it keeps its raw count 2; ab 1 (from ^ab), b$ 1 (from ab$)
    bi_a_after_start = (2 - d) / 2 + d * 1 / 2 * uni["a"]  # context ^: total 2, 1 type
    bi_b_after_a = (1 - d) / 2 + d * 2 / 2 * uni["b"]  # context a: ab 1 + a$ 1, 2 types
    bi_end_after_b = (1 - d) / 1 + d * 1 / 1 * uni["$"]  # context b: b$ 1, 1 type
    c0 = [(2 - d) / 2 + d * 1 / 2 * bi_a_after_start,  # context ^^: ^^a 2, 1 type
          (1 - d) / 2 + d * 2 / 2 * bi_b_after_a,  # context ^a: ^ab 1 + ^a$ 1, 2 types
          (1 - d) / 1 + d * 1 / 1 * bi_end_after_b]  # context ab: ab$ 1, 1 type
    assert steps_of_ab(model)[0] == pytest.approx(c0)


@pytest.fixture(scope="module")
def tiny():
    alphabet = Alphabet(ALPHABET)
    names = [name for names in TINY.values() for name in names]
    labels = torch.tensor([i for i, names in enumerate(TINY.values()) for _ in names])
    return alphabet, names, labels


def fitted(tiny, **kwargs) -> NgramModel:
    alphabet, names, labels = tiny
    model = NgramModel(NgramArgs(alphabet.size, len(TINY), **kwargs))
    model.fit(*encode_names(names, alphabet), labels)
    return model


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("order", [1, 3, 5])
def test_next_symbol_probabilities_sum_to_one(tiny, smoothing, fold, order):
    alphabet = tiny[0]
    model = fitted(tiny, order=order, smoothing=smoothing, fold=case_fold_table(ALPHABET) if fold else [])
    for prefix in ["", "S", "Yam", "Ivanov", "Qx'z", "Müll"]:  # seen, unseen and unknown-letter contexts
        probs = model.next_symbol_probs(alphabet.encode(prefix))  # [countries, letters + EOS]
        assert probs.shape == (len(TINY), alphabet.size + 1) and (probs > 0).any(1).all()
        torch.testing.assert_close(probs.sum(1), torch.ones(len(TINY), dtype=torch.float64))


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_padded_batch_gives_each_name_its_own_logits(tiny, smoothing):
    alphabet = tiny[0]
    model = fitted(tiny, order=4, smoothing=smoothing)
    names = ["Ivanov", "O'Neill", "Li", "Nakamura-Smith", "X", "Müller"]
    letters, lengths = encode_names(names, alphabet)
    garbage = torch.randint(0, alphabet.size, letters.shape, generator=torch.Generator().manual_seed(0))
    letters = torch.where(torch.arange(letters.shape[1]) < lengths[:, None], letters, garbage)  # junk past each end
    batched = model(letters, lengths)
    alone = torch.cat([model(*encode_names([name], alphabet)) for name in names])
    torch.testing.assert_close(batched, alone)


def test_case_folding_reads_upper_and_lower_case_alike(tiny):
    alphabet = tiny[0]
    model = fitted(tiny, fold=case_fold_table(ALPHABET))
    torch.testing.assert_close(model(*encode_names(["Ivanov"], alphabet)), model(*encode_names(["iVANOV"], alphabet)))
    kept = fitted(tiny, fold=[])
    assert not torch.allclose(kept(*encode_names(["Ivanov"], alphabet)), kept(*encode_names(["iVANOV"], alphabet)))


def test_state_dict_round_trip_into_a_fresh_model(tiny, tmp_path):
    alphabet = tiny[0]
    model = fitted(tiny, order=4, smoothing="kneser-ney")
    torch.save(model.state_dict(), tmp_path / "ngram.pt")
    fresh = NgramModel(NgramArgs(**vars(model.args)))  # empty buffers, as when a checkpoint is read
    fresh.load_state_dict(torch.load(tmp_path / "ngram.pt", weights_only=True))
    letters, lengths = encode_names(["Ivanov", "Takahashi", "Brownlow", "Zz"], alphabet)
    assert torch.equal(fresh(letters, lengths), model(letters, lengths))


def test_prior_power_and_scale_shape_the_logits(tiny):
    alphabet = tiny[0]
    letters, lengths = encode_names(["Smirnova", "Kato"], alphabet)
    bayes = fitted(tiny, prior_power=1.0, scale=1.0)
    other = fitted(tiny, prior_power=0.5, scale=0.8)
    log_likelihood = bayes.log_likelihood(letters, lengths).float()
    torch.testing.assert_close(bayes(letters, lengths), log_likelihood + bayes.log_prior)
    torch.testing.assert_close(other(letters, lengths), 0.8 * log_likelihood + 0.5 * bayes.log_prior)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown smoothing"):
        NgramModel(NgramArgs(5, 2, smoothing="good-turing"))
    with pytest.raises(ValueError, match="discount"):
        NgramModel(NgramArgs(5, 2, smoothing="kneser-ney", discount=1.5))
    with pytest.raises(ValueError, match="fold"):
        NgramModel(NgramArgs(5, 2, fold=[0, 1]))


def random_names(generator: torch.Generator, count: int, letters: list[int], width: int = 12):
    """(letters [count, width], lengths [count]) of names drawn from `letters` (indices), lengths 0..width,
    junk (any index, the unknown slot included) past each end."""
    lengths = torch.randint(0, width + 1, (count,), generator=generator)
    pool = torch.tensor(letters)
    drawn = pool[torch.randint(0, len(pool), (count, width), generator=generator)]
    junk = torch.randint(0, Alphabet(ALPHABET).size, (count, width), generator=generator)
    return torch.where(torch.arange(width) < lengths[:, None], drawn, junk), lengths


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("fold", [False, True])
def test_fast_log_likelihood_equals_the_reference(tiny, smoothing, order, fold):
    """The derived tables of forward/log_likelihood against `_probs` queried per country, on names whose
    contexts were seen at every order (drawn from a few letters that the training names are also drawn
    from), never seen, or hold unknown letters."""
    alphabet, names, labels = tiny
    generator = torch.Generator().manual_seed(order)
    few = [alphabet.letters.index(c) for c in "abAB"]  # a and A fold together
    unknown = alphabet.size - 1
    train_letters, train_lengths = encode_names(names, alphabet)
    drawn, drawn_lengths = random_names(generator, 60, few, width=train_letters.shape[1])
    model = NgramModel(NgramArgs(alphabet.size, len(TINY), order=order, smoothing=smoothing, k=0.3, discount=0.6,
                                 fold=case_fold_table(ALPHABET) if fold else []))
    model.fit(torch.cat([train_letters, drawn]), torch.cat([train_lengths, drawn_lengths]),
              torch.cat([labels, torch.arange(60) % len(TINY)]))
    batches = [random_names(generator, 300, few + [unknown]),  # mostly seen contexts, some unknown letters
               random_names(generator, 300, list(range(alphabet.size))),  # mostly unseen contexts
               encode_names(["Ivanov", "Yamamoto", "Wright", "", "Qx'z", "Müller", "aBab"], alphabet)]
    for letters, lengths in batches:
        reference = model._reference_log_likelihood(letters, lengths)
        torch.testing.assert_close(model.log_likelihood(letters, lengths), reference, rtol=0, atol=1e-6)
        torch.testing.assert_close(model(letters, lengths), reference.float() + model.args.prior_power * model.log_prior,
                                   rtol=0, atol=1e-4)
        torch.testing.assert_close(model.log_likelihood(letters, lengths), model.char_log_probs(letters, lengths).sum(-1),
                                   rtol=0, atol=1e-6)


def test_fast_tables_follow_a_refit_and_a_load(tiny):
    alphabet, names, labels = tiny
    letters, lengths = encode_names(["Ivanov", "Takahashi", "Brownlow", "Zz"], alphabet)
    model = fitted(tiny, order=3)
    before = model(letters, lengths)  # builds the tables
    model.fit(*encode_names(names[::2], alphabet), labels[::2])
    torch.testing.assert_close(model.log_likelihood(letters, lengths), model._reference_log_likelihood(letters, lengths),
                               rtol=0, atol=1e-6)
    assert not torch.allclose(model(letters, lengths), before)
    model.load_state_dict(fitted(tiny, order=3).state_dict())
    torch.testing.assert_close(model(letters, lengths), before)
    assert not any("fast" in key for key in model.state_dict())  # the checkpoint format is unchanged

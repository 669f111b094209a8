"""Probabilities a user can trust: the fitted temperature, the user's class mix, abstention, explanations,
names already seen, and the calibration metrics."""
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import predict
from models import checkpoint as ckpt
from models.predictor import HIDDEN, Predictor
from tests.conftest import TINY_COUNTRIES, last_letter_payload, write_tiny
from utils.calibration import fit_mix_weights, fit_temperature
from utils.class_mix import assumed_prior, prior_shift, read_prior
from utils.errors import UserError
from utils.metrics import probability_metrics


def test_a_temperature_fitted_on_overconfident_logits_recovers_the_true_one():
    torch.manual_seed(0)
    true_logits = torch.randn(20_000, 5) * 2  # [N, classes]
    labels = torch.distributions.Categorical(logits=true_logits).sample()  # drawn from softmax(true_logits)
    assert fit_temperature(true_logits * 3, labels) == pytest.approx(3.0, rel=0.05)  # 3x too sure: T = 3
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.05)


def test_mix_weights_fitted_on_validation_prefer_the_member_that_knows():
    torch.manual_seed(1)
    labels = torch.randint(0, 4, (4_000,))
    informed = torch.log_softmax(torch.nn.functional.one_hot(labels, 4).float() * 2, dim=1)  # right, mildly sure
    noise = torch.log_softmax(torch.randn(4_000, 4) * 3, dim=1)  # sure and random
    w_informed, w_noise = fit_mix_weights(torch.stack([informed, noise]), labels)
    assert w_informed > 10 * w_noise  # the informed member dominates; the random one is nearly ignored


def test_prior_reweighting_follows_bayes_rule_on_hand_computed_numbers():
    probs = torch.tensor([[0.6, 0.3, 0.1]])
    trained_on = torch.tensor([0.5, 0.25, 0.25])
    target = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    shifted = torch.softmax(probs.log() + prior_shift(trained_on, target), dim=1)
    # p(c) ∝ p_model(c) * target(c) / trained(c): 0.6*0.4 = 0.24, 0.3*0.8 = 0.24, 0.1*2.4 = 0.24 -> equal
    torch.testing.assert_close(shifted, torch.full((1, 3), 1 / 3))


def test_a_uniform_prior_on_uniform_training_data_changes_nothing():
    uniform = read_prior("uniform", ["a", "b", "c", "d"], None)
    assert torch.equal(prior_shift(torch.full((4,), 0.25), uniform), torch.zeros(4))
    assert read_prior("model", ["a", "b"], None) is None


def test_prior_files_in_json_and_tsv_and_their_errors(tmp_path):
    (tmp_path / "mix.json").write_text(json.dumps({"Spanish": 3, "English": 1}))
    (tmp_path / "mix.tsv").write_text("Spanish\t0.75\nEnglish\t0.25\n")
    countries = ["English", "Japanese", "Spanish"]
    for name in ("mix.json", "mix.tsv"):
        torch.testing.assert_close(read_prior(str(tmp_path / name), countries, None),
                                   torch.tensor([0.25, 0.0, 0.75], dtype=torch.float64))
    (tmp_path / "bad.json").write_text(json.dumps({"Atlantean": 1}))
    with pytest.raises(Exception, match="Atlantean"):
        read_prior(str(tmp_path / "bad.json"), countries, None)


@pytest.mark.parametrize("content, expected", [
    (b'{"Spanish": 1e308, "English": 1e308}', [0.5, 0.0, 0.5]),  # the sum would overflow: normalised by the largest
    (b'{"Spanish": 5e-324}', [0.0, 0.0, 1.0]),
    (b'\xef\xbb\xbf{"English": 1}', [1.0, 0.0, 0.0]),  # a UTF-8 byte-order mark is fine
    (b'{"Spanish": true}', "the share of Spanish must be a finite number >= 0, not True"),
    (b'{"Spanish": "0.5"}', "the share of Spanish must be a finite number"),
    (b'{"Spanish": NaN}', "the share of Spanish must be a finite number"),
    (b'{"Spanish": 1e400}', "the share of Spanish must be a finite number"),
    (b'{"Spanish": 1' + b"0" * 400 + b'}', "the share of Spanish must be a finite number"),
    (b'{"Spanish": -1, "English": 2}', "the share of Spanish must be a finite number >= 0"),
    (b'{"Spanish": 0}', "the shares add up to 0"),
    (b'\xff\xfe{\x00}\x00', "not UTF-8 text"),
    (b"[" * 100_000, "expected a JSON object"),
    (b'[1, 2]', "expected a JSON object of country: share"),
    (b'{"Spanish": 1, "Spanish": 5}', "Spanish given more than once; give each country one share"),
])
def test_a_prior_is_finite_shares_or_one_line(tmp_path, content, expected):
    (tmp_path / "prior.json").write_bytes(content)
    if isinstance(expected, str):
        with pytest.raises(UserError) as e:
            read_prior(str(tmp_path / "prior.json"), ["English", "Japanese", "Spanish"], None)
        assert expected in str(e.value) and "\n" not in str(e.value)
    else:
        prior = read_prior(str(tmp_path / "prior.json"), ["English", "Japanese", "Spanish"], None)
        assert prior.tolist() == pytest.approx(expected)


def test_a_country_twice_in_a_tsv_prior_is_refused(tmp_path):
    (tmp_path / "prior.tsv").write_text("Spanish\t1\nEnglish\t1\nSpanish\t2\n", encoding="utf-8")
    with pytest.raises(UserError, match="Spanish given more than once"):
        read_prior(str(tmp_path / "prior.tsv"), ["English", "Japanese", "Spanish"], None)


def test_nan_and_infinity_in_a_tsv_prior_are_refused(tmp_path):
    for share in ("nan", "inf", "-1", "true"):
        (tmp_path / "prior.tsv").write_text(f"Spanish\t{share}\n")
        with pytest.raises(UserError):
            read_prior(str(tmp_path / "prior.tsv"), ["English", "Spanish"], None)


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5)
                    | st.sampled_from([1e308, 5e-324, 10 ** 400]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["English", "Japanese", "Russian", "Atlantean", ""]), inner, max_size=4),
                    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_json_value_as_a_prior_works_or_is_one_line(hand_predictor, tmp_path_factory, value):
    path = tmp_path_factory.mktemp("prior") / "prior.json"
    path.write_text(json.dumps(value))  # NaN and Infinity too, as Python writes them
    try:
        prior = read_prior(str(path), hand_predictor.countries, None)
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert torch.isfinite(prior).all() and prior.sum().item() == pytest.approx(1.0)
    hand_predictor.set_prior(prior)
    try:
        probabilities = hand_predictor.probabilities(["Tanaka", "Smith", "Ivanov"])
    finally:
        hand_predictor.set_prior(None)
    assert not probabilities.isnan().any() and probabilities.sum(dim=1).tolist() == pytest.approx([1.0] * 3)


@pytest.fixture(scope="module")
def hand_predictor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hand")
    return Predictor.from_checkpoints([ckpt.save(last_letter_payload(write_tiny(folder / "tiny.tsv")),
                                                 folder / "hand.bin")])


def test_json_answers_under_an_extreme_prior_are_valid_json(hand, tmp_path, capsys):
    (tmp_path / "prior.json").write_text('{"Japanese": 1e308, "English": 1e308}')
    assert predict.main(["Nakamura", "Smith", "--json", "--prior", str(tmp_path / "prior.json"),
                         "--checkpoint", str(hand)]) == 0
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line, parse_constant=lambda name: pytest.fail(f"bare {name} in {line}"))
        assert record["country"] in ("Japanese", "English")


def test_the_assumed_prior_is_the_mix_left_after_the_posthoc_adjustment():
    prior = torch.tensor([0.64, 0.36])
    torch.testing.assert_close(assumed_prior(prior, 0.5), torch.tensor([0.8, 0.6], dtype=torch.float64) / 1.4)
    torch.testing.assert_close(assumed_prior(prior, 1.0), torch.tensor([0.5, 0.5], dtype=torch.float64))


@pytest.fixture
def hand(tmp_path):
    """The conftest's last-letter rnn, saved; every probability is known."""
    data = write_tiny(tmp_path / "tiny.tsv")
    return ckpt.save(last_letter_payload(data), tmp_path / "hand.bin")


@pytest.mark.parametrize("threshold, abstained", [(1.0, 3), (0.0, 0)])
def test_min_probability_abstains_on_everything_below_one_and_nothing_at_zero(hand, capsys, threshold, abstained):
    assert predict.main(["Nakamura", "Petrov", "Smith", "--json", "--min-probability", str(threshold),
                         "--checkpoint", str(hand)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(r["abstained"] for r in records) == abstained
    assert sum(r["country"] == "unknown" for r in records) == abstained
    assert all(r["top"][0]["country"] in TINY_COUNTRIES for r in records)  # the best guess is kept


def test_an_explanation_hides_each_letter_once_and_matches_a_direct_computation(hand):
    predictor = Predictor.from_checkpoints([hand])
    name = "Tanaka"
    explanation = predictor.explain(name, "Japanese")
    assert [letter for letter, _ in explanation] == list(name)
    column = predictor.countries.index("Japanese")
    whole = predictor.probabilities([name])[0, column].item()
    for i, (_, effect) in enumerate(explanation):
        hidden = predictor.probabilities([name[:i] + HIDDEN + name[i + 1:]])[0, column].item()
        assert effect == pytest.approx(whole - hidden)
    # the last letter decides this model: hiding it costs the most, hiding any other costs nothing
    assert explanation[-1][1] > 0.5 and all(abs(effect) < 1e-6 for _, effect in explanation[:-1])


def test_seen_in_training_lists_the_countries_of_a_name_filed_under_two(tmp_path):
    import train
    from utils.data import SurnameData

    rows = [(n, c) for c, names in {"English": ["Smith", "Jones", "Brown", "Green", "White", "Wright", "Evans",
                                                  "Walker"],
                                    "Scottish": ["Smith", "Reid", "Fraser", "Murray", "Stewart", "Ross", "Boyd",
                                                 "Kerr"]}.items() for n in names]
    data = write_tiny(tmp_path / "two.tsv", rows)
    # seed 2 puts Smith (both its rows: the split is by name) in training, Brown out of it
    assert SurnameData.build(data, 0.25, 0.25, seed=2).countries_by_name("train")["Smith"] == ["English", "Scottish"]
    result = train.main(["--data", str(data), "--save-dir", str(tmp_path / "save"), "--model", "ngram", "--seed", "2",
                         "--val-fraction", "0.25", "--test-fraction", "0.25"])
    payload = ckpt.load(result["best_path"])
    predictor = Predictor.from_checkpoints([result["best_path"]])
    in_training = set(payload["seen"])
    assert "Smith" in in_training and "Brown" not in in_training
    assert predictor.seen_in_training("Smith") == ["English", "Scottish"]
    assert predictor.seen_in_training("Brown") == [] and predictor.seen_in_training("Zzyzx") == []
    assert all(predictor.seen_in_training(name) for name in in_training)


def test_probability_metrics_on_hand_computed_numbers():
    probs = torch.tensor([[0.95, 0.05], [0.65, 0.35], [0.25, 0.75], [0.15, 0.85]])
    labels = [0, 1, 1, 1]  # right, wrong (0.65 for 0), right, right
    m = probability_metrics(probs, labels, bins=10)
    # one name per bin: 0.95 right (gap 0.05), 0.65 wrong (gap 0.65), 0.75 right (0.25), 0.85 right (0.15)
    assert m["ece"] == pytest.approx((0.05 + 0.65 + 0.25 + 0.15) / 4, abs=1e-6)
    assert m["nll"] == pytest.approx(-(math.log(0.95) + math.log(0.35) + math.log(0.75) + math.log(0.85)) / 4)
    assert m["brier"] == pytest.approx((0.005 + 0.845 + 0.125 + 0.045) / 4, abs=1e-6)
    # most confident first: 0.95 (right), 0.85 (right), 0.75 (right), 0.65 (wrong)
    assert m["accuracy_at_coverage"]["50%"] == 1.0 and m["accuracy_at_coverage"]["100%"] == 0.75

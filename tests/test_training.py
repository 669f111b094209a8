"""utils/training.py and train.py's loop: the schedule, the class weights and the class-mix correction, letter
dropout, the running log, one training step, the evaluation pass, and a short run in this process."""
import json
import math
import random
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train
from config.config import ALPHABET, TrainConfig
from models import build_model
from models.rnn import RNNArgs
from tests.conftest import TINY, TINY_COUNTRIES, TINY_FRACTIONS, write_tiny
from models.checkpoint import load
from utils.data import Alphabet, LengthBucketSampler, NamesDataset, SurnameData, drop_letters, make_loader
from utils.errors import UserError
from utils.class_mix import class_shares, log_prior, posthoc_offset, row_offset
from utils.training import (RunningLog, class_weights, evaluate, make_optimizer, make_scheduler, pick_device,
                            seed_everything, train_step)

ALPHA = Alphabet(ALPHABET)


# --- the learning-rate schedule ---

def lrs(total: int, extra: int = 3) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, total)
    out = []
    for _ in range(total + extra):  # a few steps past the end
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_zero():
    values = lrs(100)
    assert values[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # 5% of the steps of linear warm-up
    assert values[5:7] == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 95))])  # then a cosine from the peak
    assert values[52] == pytest.approx(0.5, abs=0.02)  # half-way down at half of the decay
    assert all(a >= b for a, b in zip(values[4:], values[5:]))  # never rises after the peak
    assert values[100:] == pytest.approx([0.0] * 3)  # and stays at 0 past the end
    assert lrs(3, extra=0)[0] == pytest.approx(1.0)  # a run shorter than 20 steps warms up in one


# --- class weights, the class-mix correction ---

LABELS = torch.tensor([0] * 8 + [1] * 2)  # 8 of class 0, 2 of class 1, none of class 2


def test_class_weights_and_prior():
    w = class_weights(LABELS, 3, power=1.0)
    assert w.tolist()[:2] == pytest.approx([10 / (3 * 8), 10 / (3 * 2)])
    assert w[LABELS][:8].sum().item() == pytest.approx(w[LABELS][8:].sum().item())  # both classes weigh the same
    assert class_weights(LABELS, 3, power=0.0).tolist() == [1.0, 1.0, 1.0]
    assert class_weights(LABELS, 3, power=0.5)[1].item() == pytest.approx(math.sqrt(10 / 6))
    assert log_prior(LABELS, 3)[:2].exp().tolist() == pytest.approx([0.8, 0.2])
    assert torch.isfinite(class_weights(LABELS, 3, 1.0)).all()  # an absent class divides by 1, not 0


NAMES = torch.tensor([0] * 8 + [1] * 2)  # trained on: 8 distinct names of class 0, 2 of class 1
ROWS = torch.tensor([0] * 8 + [1] * 8)  # every row: the two class-1 names repeated 4 times each


def test_offset_multiplies_odds_by_the_row_share_over_the_name_share():
    offset = row_offset(NAMES, ROWS, 2)
    # class 0: 8/16 of the rows against 8/10 of the names; class 1: 8/16 against 2/10
    assert offset.tolist() == pytest.approx([math.log(0.5 / 0.8), math.log(0.5 / 0.2)])
    probs = torch.softmax(torch.zeros(2) + offset, 0)  # two classes the model finds equally likely
    assert (probs[1] / probs[0]).item() == pytest.approx(4.0)  # the rows make class 1 four times likelier
    assert row_offset(NAMES, NAMES, 2).tolist() == [0.0, 0.0]  # no duplicates, no correction


def test_posthoc_adjustment_takes_the_row_prior_off():
    shares = class_shares(ROWS, 2)
    assert shares.tolist() == [0.5, 0.5] and class_shares([0, 0, 0, 2], 3).tolist() == [0.75, 0.0, 0.25]
    full = row_offset(NAMES, ROWS, 2) + posthoc_offset(shares, 1.0)
    assert full.tolist() == pytest.approx([-math.log(0.8), -math.log(0.2)])  # minus the log prior of the names
    half = row_offset(NAMES, ROWS, 2) + posthoc_offset(shares, 0.5)
    assert half[1].item() == pytest.approx(0.5 * math.log(0.5) - math.log(0.2))


# --- letter dropout ---

def test_drop_letters_hides_about_p_of_the_letters_and_keeps_the_rest():
    letters = torch.randint(0, 57, (64, 10), generator=torch.Generator().manual_seed(0))
    assert drop_letters(letters, 0.0, 57) is letters
    torch.manual_seed(1)
    dropped = drop_letters(letters, 0.25, 57)
    hidden = dropped == 57
    assert 0.2 < hidden.float().mean().item() < 0.3
    assert torch.equal(dropped[~hidden], letters[~hidden])
    torch.manual_seed(1)
    assert torch.equal(drop_letters(letters, 0.25, 57), dropped)  # the global seed decides


# --- the running log ---

def test_running_log_window_points_and_epoch_means():
    log = RunningLog(every=100)
    log.add(loss_sum=64 * 2.0, correct=32, count=64)
    assert log.history["samples"] == []  # 64 samples: the window is not full yet
    log.add(loss_sum=64 * 1.0, correct=64, count=64)
    assert log.history["samples"] == [128]
    assert log.history["loss"] == [pytest.approx(1.5)] and log.history["accuracy"] == [pytest.approx(96 / 128)]
    log.add(loss_sum=10 * 3.0, correct=0, count=10)  # starts the next window
    assert log.epoch_means() == (pytest.approx((128 + 64 + 30) / 138), pytest.approx(96 / 138))
    log.start_epoch()
    assert log.epoch_means() == (0.0, 0.0) and log.seen == 138
    log.add(loss_sum=90 * 0.5, correct=90, count=90)  # the window spans the epoch boundary: 10 + 90 samples
    assert log.history["samples"] == [128, 228]
    assert log.history["loss"][1] == pytest.approx((30 + 45) / 100)
    assert log.epoch_means() == (pytest.approx(0.5), pytest.approx(1.0))


# --- one step, one evaluation pass ---

def small_model(dropout: float = 0.0):
    torch.manual_seed(0)
    args = RNNArgs("gru", ALPHA.size, 3, hidden_size=8, bidirectional=True, dropout=dropout)
    return build_model("gru", asdict(args))


def tiny_batch():
    letters, lengths = ALPHA.encode_many(["Tanaka", "Ivanov", "Wright"])  # one length: a bucketed batch
    return letters, lengths, torch.tensor([1, 2, 0])


def test_train_step_moves_every_weight_and_the_schedule():
    model = small_model()
    optimizer = make_optimizer(model, 1e-2, torch.device("cpu"))
    scheduler = make_scheduler(optimizer, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss, correct = train_step(model, tiny_batch(), optimizer, scheduler, None, 0.0, ALPHA.unknown_index,
                               torch.device("cpu"))
    with torch.no_grad():
        expected = F.cross_entropy(small_model()(*tiny_batch()[:2]), tiny_batch()[2])  # the untouched twin's loss
    assert loss.item() == pytest.approx(expected.item()) and 0 <= int(correct) <= 3
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items()), "a weight did not move"
    assert scheduler.last_epoch == 1  # the schedule stepped with the optimiser


def test_train_step_weighs_the_loss_and_drops_letters():
    weight = torch.tensor([0.0, 0.0, 1.0])  # only the Russian row counts
    model = small_model()
    optimizer = make_optimizer(model, 1e-2, torch.device("cpu"))
    loss, _ = train_step(model, tiny_batch(), optimizer, make_scheduler(optimizer, 10), weight, 0.0,
                         ALPHA.unknown_index, torch.device("cpu"))
    with torch.no_grad():
        twin = small_model()
        russian = F.cross_entropy(twin(*tiny_batch()[:2])[1:2], torch.tensor([2]))
    assert loss.item() == pytest.approx(russian.item())
    seen = []
    model = small_model()
    model.forward = lambda letters, lengths: seen.append(letters.clone()) or torch.zeros(len(letters), 3,
                                                                                         requires_grad=True)
    optimizer = torch.optim.SGD(small_model().parameters(), lr=0.1)
    train_step(model, tiny_batch(), optimizer, make_scheduler(optimizer, 10), None, 0.99, ALPHA.unknown_index,
               torch.device("cpu"))
    assert (seen[0] == ALPHA.unknown_index).float().mean() > 0.8  # the model read the dropped letters


def test_evaluate_is_deterministic_adds_the_offset_and_restores_the_training_mode():
    model = small_model(dropout=0.5)
    names = ["Tanaka", "Ivanov", "Wright", "Li", "Smith", "O'Neill"]
    dataset = NamesDataset(names, [1, 2, 0, 0, 0, 0], ALPHA)
    loader = make_loader(dataset, batch_size=2, shuffle=False)
    offset = torch.tensor([0.5, -1.0, 0.0])
    model.train()
    y_true, logits, loss = evaluate(model, loader, offset, torch.device("cpu"))
    assert model.training  # put back as it was
    model.eval()
    with torch.no_grad():
        rows = [r for batch in LengthBucketSampler(dataset.lengths, 2, shuffle=False) for r in batch]  # loader order
        expected = torch.cat([model(ALPHA.encode(names[r])[None], dataset.lengths[r:r + 1]) for r in rows]) + offset
    assert y_true == [int(dataset.labels[r]) for r in rows]
    torch.testing.assert_close(logits, expected)  # no dropout: eval mode inside
    assert loss == pytest.approx(F.cross_entropy(expected, torch.tensor(y_true)).item(), abs=1e-5)
    evaluate(model, loader, offset, torch.device("cpu"))
    assert not model.training  # an eval-mode model stays in eval mode


# --- seeds and devices ---

def test_seed_everything_repeats_the_draws_and_devices_are_checked():
    seed_everything(3)
    first = (torch.rand(3), random.random(), np.random.rand())
    seed_everything(3)
    assert torch.equal(torch.rand(3), first[0]) and random.random() == first[1] and np.random.rand() == first[2]
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="not a torch device"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            pick_device("cuda")


# --- train.py's loop, in this process ---

def test_a_short_run_dedupes_stops_at_max_steps_and_stores_the_row_mix(tmp_path):
    # every Russian name five times: the rows' class mix differs from the distinct names'
    rows = [(name, country) for country, names in TINY.items() for name in names]
    rows += [(name, "Russian") for name in TINY["Russian"]] * 4
    data = write_tiny(tmp_path / "dup.tsv", rows)
    split = SurnameData.build(data, 0.25, 0.25, 0)
    distinct = split.dataset("train", ALPHA, dedupe=True)
    steps_per_epoch = len(LengthBucketSampler(distinct.lengths, 8, shuffle=True))
    save = tmp_path / "save"
    result = train.main(["--data", str(data), "--save-dir", str(save), "--model", "lstm", "--epochs", "3",
                         "--max-steps", str(steps_per_epoch + 1), "--batch-size", "8", "--hidden-size", "8",
                         "--letter-dropout", "0.2", "--no-feminine-forms", "--posthoc-adjust", "0",
                         *TINY_FRACTIONS])
    history = result["history"]
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]  # stopped one step into epoch 2
    assert history["epochs"][0]["samples"] == len(distinct) == 24  # each distinct training name once an epoch
    assert result["best_path"] == save / "lstm_classification_best.bin"
    assert json.loads(result["history_path"].read_text())["test"] == history["test"]
    assert {p.name for p in save.iterdir()} == {"lstm_classification_best.bin", "lstm_history.json", "lstm_curves.png",
                                                 "latest", "runs", ".lock"}  # what the finished run published
    assert (save / "latest").read_text() == "lstm_classification_best.bin\n"
    run = result["run_dir"]  # the run's own files
    assert run.parent == save / "runs" and run.name.startswith("lstm-")
    assert {p.name for p in run.iterdir()} == {"lstm_classification_1.bin", "lstm_classification_2.bin",
                                               "lstm_classification_best.bin", "lstm_curves.png"}
    assert (save / "lstm_curves.png").read_bytes()[:4] == b"\x89PNG"

    checkpoint = load(result["best_path"])
    assert checkpoint["config"]["letter_dropout"] == 0.2 and checkpoint["config"]["max_steps"] == steps_per_epoch + 1
    assert checkpoint["data"] == split.record() and checkpoint["countries"] == TINY_COUNTRIES
    published = json.dumps([checkpoint["config"], json.loads(result["history_path"].read_text())["config"]])
    assert checkpoint["config"]["data"] == ["dup.tsv"] and str(tmp_path) not in published  # no machine paths
    offset = checkpoint["logit_offset"]  # English, Japanese, Russian
    # the split keeps the same share of each country's distinct names, so the ratios are exact
    assert offset[2] - offset[0] == pytest.approx(math.log(5.0), abs=1e-5)
    assert offset[1] - offset[0] == pytest.approx(0.0, abs=1e-5)
    assert checkpoint["train_prior"] == pytest.approx(split.class_shares("train").tolist())


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--test-fraction", "0.7"], "between 0 and 0.5"),
    (["--dropout", "1"], "--dropout and --letter-dropout in [0, 1)"),
    (["--model", "transformer-xl"], "--model takes one of"),
])
def test_impossible_settings_are_refused_before_the_data_is_read(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as e:
        train.main(["--data", str(tmp_path / "nowhere.tsv"), "--save-dir", str(tmp_path / "s"), *flags])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_the_real_preset_brings_its_batch_and_epochs_and_flags_still_win():
    import train

    real, _ = train.parse_args(["--data", "real"])
    assert (real.batch_size, real.epochs, real.lr, real.data) == (512, 10, 0.01, ("real",))
    assert train.parse_args(["--data", "real", "--epochs", "3"])[0].epochs == 3
    tutorial, _ = train.parse_args([])
    assert (tutorial.batch_size, tutorial.data) == (TrainConfig().batch_size, ("tutorial",))


def test_a_data_preset_other_than_the_tutorial_names_the_published_files():
    import train

    assert train.published_name(train.parse_args([])[0]) == "ngram+gru"
    assert train.published_name(train.parse_args(["--data", "real", "--model", "gru"])[0]) == "gru-real"
    assert train.published_name(train.parse_args(["--data", "my.tsv"])[0]) == "ngram+gru"


def test_training_on_two_files_records_both_and_evaluates_each_origin(tmp_path, capsys):
    import evaluate
    from tests.test_cli import run_main

    first = write_tiny(tmp_path / "first.tsv")
    second = tmp_path / "second.tsv"
    second.write_text("".join(f"{name}ski\t{country}\tregister\n" for country, names in TINY.items() for name in names),
                      encoding="utf-8")
    save = tmp_path / "save"
    result = train.main(["--data", str(first), str(second), "--save-dir", str(save), "--model", "ngram",
                         *TINY_FRACTIONS])
    checkpoint = load(result["best_path"])
    assert checkpoint["data"]["files"] == ["first.tsv", "second.tsv"] and checkpoint["config"]["data"] == [
        "first.tsv", "second.tsv"]
    capsys.readouterr()
    assert run_main(evaluate.main, ["--checkpoint", str(result["best_path"]), "--split-data", str(first), str(second),
                                    "--domains", "--external", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert list(table) == ["test split, all sources", "test split: first.tsv", "test split: register"]
    assert table["test split: first.tsv"]["rows"] + table["test split: register"]["rows"] == table[
        "test split, all sources"]["rows"] == 24


def test_the_best_epochs_weights_are_what_the_run_publishes(tmp_path, monkeypatch):
    """Validation scripted to peak at epoch 2 of 3: the published model holds epoch 2's weights, not the last's."""
    import utils.metrics

    real, scripted = utils.metrics.classification_metrics, iter([0.5, 0.9, 0.1])

    def val_metrics(y_true, y_pred):
        metrics = real(y_true, y_pred)
        return {**metrics, "accuracy": next(scripted, metrics["accuracy"])}  # the test split's, after: the real one

    monkeypatch.setattr(utils.metrics, "classification_metrics", val_metrics)
    data, save = write_tiny(tmp_path / "tiny.tsv"), tmp_path / "save"
    result = train.main(["--data", str(data), "--save-dir", str(save), "--model", "gru", "--epochs", "3",
                         "--batch-size", "8", "--hidden-size", "8", *TINY_FRACTIONS])
    published, second, third = (load(p) for p in (result["best_path"], result["run_dir"] / "gru_classification_2.bin",
                                                  result["run_dir"] / "gru_classification_3.bin"))
    assert published["epoch"] == 2
    assert all(torch.equal(published["model_state"][k], second["model_state"][k]) for k in second["model_state"])
    assert not all(torch.equal(published["model_state"][k], third["model_state"][k]) for k in third["model_state"])

"""models/checkpoint.py: what a checkpoint holds, the atomic write, every refusal of a bad file, and the default."""
import errno
import math
import os
import stat
import tempfile
import time

import pytest
import torch

from models.predictor import Predictor
from models import checkpoint as ckpt
from utils.errors import CheckpointError, UserError

NAMES = ["Nakamura", "Ivanov", "Smith", "lucy", "Müller", "Maxa/B"]


def payload_of(path) -> dict:
    """A checkpoint's dict as save() takes it (without the format tag save adds)."""
    return {k: v for k, v in ckpt.load(path).items() if k != "format"}


def test_checkpoint_is_self_describing(tiny_checkpoint):
    checkpoint = ckpt.load(tiny_checkpoint)
    assert checkpoint["format"] == ckpt.FORMAT and checkpoint["family"] == "gru" and checkpoint["finished"] is True
    assert checkpoint["countries"] == ["English", "Japanese", "Russian"]
    assert checkpoint["model_args"]["n_letters"] == len(checkpoint["alphabet"]) + 1
    assert checkpoint["model_args"]["cell"] == "gru" and checkpoint["model_args"]["hidden_size"] == 16
    assert set(checkpoint["data"]) == set(ckpt.DATA_RECORD) and checkpoint["data"]["file"] == "tiny.tsv"
    assert checkpoint["data"]["seed"] == 0 and len(checkpoint["data"]["sha256"]) == 64
    assert {"val_accuracy", "test_accuracy", "test_balanced_accuracy", "test_macro_f1"} <= set(checkpoint["metrics"])
    assert checkpoint["config"]["epochs"] == 4 and 1 <= checkpoint["epoch"] <= 4
    assert sum(checkpoint["train_prior"]) == pytest.approx(1.0) and len(checkpoint["logit_offset"]) == 3
    assert ckpt.best_path(tiny_checkpoint.parent, "gru") == tiny_checkpoint
    [run] = (tiny_checkpoint.parent / ckpt.RUNS).iterdir()  # the run's own folder keeps its epochs
    assert ckpt.epoch_path(run, "gru", 2).is_file()


def test_round_trip_gives_identical_predictions(tiny_checkpoint, tmp_path):
    first = Predictor.from_checkpoint(tiny_checkpoint)
    copy = ckpt.save(payload_of(tiny_checkpoint), tmp_path / "copy.bin")
    second = Predictor.from_checkpoint(copy)
    assert torch.equal(first.probabilities(NAMES[:3]), second.probabilities(NAMES[:3]))
    assert [p.top for p in first.predict(NAMES, topk=3)] == [p.top for p in second.predict(NAMES, topk=3)]


def test_build_model_gives_the_stored_weights_in_eval_mode(tiny_checkpoint):
    checkpoint = ckpt.load(tiny_checkpoint)
    model = ckpt.build_model(checkpoint)
    assert not model.training
    assert all(torch.equal(v, checkpoint["model_state"][k]) for k, v in model.state_dict().items())


def test_probabilities_sum_to_one_and_topk_is_sorted(tiny_checkpoint):
    (p,) = Predictor.from_checkpoint(tiny_checkpoint).predict(["Müller"], topk=5)
    assert p.normalised == "Muller" and len(p.top) == 3  # only 3 countries exist
    probs = [prob for _, prob in p.top]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_a_write_that_fails_midway_leaves_the_old_file_whole_and_no_temp_file(hand_checkpoint, monkeypatch):
    folder = hand_checkpoint.parent
    before = hand_checkpoint.read_bytes()
    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        """Write the first bytes of a real checkpoint where asked, then die as a full disk or Ctrl-C would."""
        if isinstance(f, (str, os.PathLike)):
            f = open(f, "wb")
        f.write(before[:100])
        f.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(UserError, match="No space left"):  # one line, as every file error
        ckpt.save(payload_of(hand_checkpoint), hand_checkpoint)
    monkeypatch.setattr(torch, "save", real_save)
    assert hand_checkpoint.read_bytes() == before  # a reader still finds the old checkpoint, whole
    assert sorted(p.name for p in folder.iterdir()) == [hand_checkpoint.name]  # no temp file left
    assert ckpt.load(hand_checkpoint)["countries"] == ["English", "Japanese", "Russian"]


@pytest.mark.parametrize("kind", ["folder", "symlink", "fifo", "device"])
def test_only_a_regular_file_is_ever_replaced(tmp_path, kind):
    target, aim = tmp_path / "out.bin", tmp_path / "aim.bin"
    aim.write_bytes(b"kept")
    if kind == "folder":
        target.mkdir()
    elif kind == "symlink":
        target.symlink_to(aim)
    elif kind == "fifo":
        os.mkfifo(target)
    else:  # a device node of its own (never a real one: a rename as root would replace it with a file)
        if os.geteuid() != 0:
            pytest.skip("only root makes device nodes")
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(UserError, match="not a regular file: refusing to replace it") as e:
        ckpt.write_text(target, "new")
    assert "\n" not in str(e.value) and aim.read_bytes() == b"kept"
    assert not stat.S_ISREG(os.lstat(target).st_mode) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS])
def test_an_unwritable_folder_is_one_line(tmp_path, monkeypatch, error):
    def refuse(*args, **kwargs):  # what a folder the user cannot write, or a read-only mount, answers (even to root)
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(UserError, match=rf"cannot write .*out.bin \({os.strerror(error)}\)"):
        ckpt.write_text(tmp_path / "out.bin", "new")


def test_a_written_file_gets_the_umask_mode_not_a_temp_files(tmp_path):
    old = os.umask(0o022)
    try:
        assert ckpt.write_text(tmp_path / "shared.json", "{}").stat().st_mode & 0o777 == 0o644  # a colleague reads it
    finally:
        os.umask(old)


def test_the_default_is_what_latest_names_when_it_is_finished(hand_checkpoint, tmp_path):
    save_dir, good = tmp_path / "save", payload_of(hand_checkpoint)
    older = ckpt.publish(save_dir, "rnn", good)
    newer = ckpt.save(good, ckpt.best_path(save_dir, "gru"))
    os.utime(older, (1e9, 1e9))  # by modification time gru would win; latest says rnn
    assert (save_dir / ckpt.LATEST).read_text() == "rnn_classification_best.bin\n"
    assert ckpt.default_checkpoint(save_dir) == older
    for pointer in ["../elsewhere_classification_best.bin\n", "gru_classification_1.bin", "\xff"]:
        (save_dir / ckpt.LATEST).write_text(pointer)  # outside the folder, not a best file, garbage: by time
        assert ckpt.default_checkpoint(save_dir) == newer
    with pytest.raises(ValueError):
        ckpt.publish(save_dir, "lstm", {**good, "finished": False})


def test_missing_corrupt_and_foreign_files_are_one_line(tiny_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="python train.py"):
        ckpt.load(tmp_path / "none.bin")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as e:
        ckpt.load(truncated)
    assert "\n" not in str(e.value)
    foreign = tmp_path / "foreign.bin"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a surname-classifier checkpoint"):
        ckpt.load(foreign)
    pickled = tmp_path / "pickled.bin"
    torch.save({"format": ckpt.FORMAT, "model": torch.nn.Linear(2, 2)}, pickled)  # a whole module: code, not data
    with pytest.raises(CheckpointError, match="holds Python objects"):
        ckpt.load(pickled)


def nan_weights(p: dict) -> dict:
    state = dict(p["model_state"])
    state["head.bias"] = torch.tensor([0.0, math.nan, 0.0])
    return {**p, "model_state": state}


BAD = {  # what is wrong -> (how to make it from a good payload, what the error says)
    "hidden size 10**6": (lambda p: {**p, "model_args": {**p["model_args"], "hidden_size": 10**6}},
                          "model_args hidden_size=1000000 is out of range"),
    "negative layers": (lambda p: {**p, "model_args": {**p["model_args"], "num_layers": -1}}, "out of range"),
    "NaN weights": (nan_weights, "weights head.bias hold NaN or infinite values"),
    "alphabet is an int": (lambda p: {**p, "alphabet": 57}, "alphabet is a int, not a str"),
    "data record lacks sha256": (lambda p: {**p, "data": {k: v for k, v in p["data"].items() if k != "sha256"}},
                                 "the data record lacks sha256"),
    "data record lacks seed": (lambda p: {**p, "data": {k: v for k, v in p["data"].items() if k != "seed"}},
                               "the data record lacks seed"),
    "no countries": (lambda p: {k: v for k, v in p.items() if k != "countries"}, "checkpoint lacks countries"),
    "countries not a list": (lambda p: {**p, "countries": "English"}, "countries is a str, not a list"),
    "a country too few": (lambda p: {**p, "countries": p["countries"][:2]}, "train_prior must be 2 finite numbers"),
    "infinite offset": (lambda p: {**p, "logit_offset": [0.0, math.inf, 0.0]}, "logit_offset must be 3 finite"),
    "zero temperature": (lambda p: {**p, "temperature": 0.0}, "temperature must be a positive number"),
    "unknown family": (lambda p: {**p, "family": "transformer-xl"}, "unknown model family 'transformer-xl'"),
    "alphabet of another size": (lambda p: {**p, "alphabet": p["alphabet"][:-1]}, "do not match its alphabet"),
    "hidden size of other weights": (lambda p: {**p, "model_args": {**p["model_args"], "hidden_size": 4}},
                                     "weights do not match the model they describe"),
    "an argument the family lacks": (lambda p: {**p, "model_args": {**p["model_args"], "heads": 4}},
                                     "weights do not match the model they describe"),
}


@pytest.mark.parametrize("what", list(BAD))
def test_a_bad_field_is_refused_with_one_line(hand_checkpoint, tmp_path, what):
    make_bad, message = BAD[what]
    path = ckpt.save(make_bad(payload_of(hand_checkpoint)), tmp_path / "bad.bin")
    with pytest.raises(CheckpointError) as e:
        Predictor.from_checkpoint(path)  # load, validate, build: the way predict.py and evaluate.py read one
    assert message in str(e.value) and str(e.value).startswith(str(path))
    assert "\n" not in str(e.value)


def test_default_is_the_newest_finished_run_never_an_unfinished_one(hand_checkpoint, tmp_path):
    save_dir = tmp_path / "save"
    good = payload_of(hand_checkpoint)
    finished = ckpt.save(good, ckpt.best_path(save_dir, "rnn"))
    unfinished = ckpt.save({**good, "finished": False}, ckpt.best_path(save_dir, "gru"))
    (save_dir / f"lstm{ckpt.BEST_SUFFIX}").write_bytes(b"half a file")  # unreadable: skipped, not fatal
    for age, path in enumerate([unfinished, save_dir / f"lstm{ckpt.BEST_SUFFIX}", finished]):
        os.utime(path, (1e9 - age * 100, 1e9 - age * 100))  # the unfinished run is the newest, the finished the oldest
    assert ckpt.default_checkpoint(save_dir) == finished
    ckpt.save({**good, "finished": True}, ckpt.epoch_path(save_dir, "gru", 3))  # an epoch file is never a default
    finished.unlink()
    with pytest.raises(CheckpointError, match="no finished training run in .*python train.py"):
        ckpt.default_checkpoint(save_dir)
    os.utime(unfinished, (2e9, 2e9))
    newer = ckpt.save(good, ckpt.best_path(save_dir, "lstm"))
    os.utime(newer, (1.5e9, 1.5e9))
    assert ckpt.default_checkpoint(save_dir) == newer


def test_a_mix_with_a_huge_member_list_is_refused_before_any_member_is_built(hand_checkpoint, tmp_path):
    good = payload_of(hand_checkpoint)
    member = {"family": "rnn", "args": good["model_args"]}
    n_letters, n_countries = good["model_args"]["n_letters"], good["model_args"]["n_countries"]
    crafted = {**good, "family": "mix", "model_args": {"n_letters": n_letters, "n_countries": n_countries,
                                                        "members": [member] * 100_000, "weights": [1.0] * 100_000}}
    path = ckpt.save(crafted, tmp_path / "mix.bin")
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="a mix holds 2 to 16 members"):
        Predictor.from_checkpoint(path)
    assert time.perf_counter() - started < 5
    for members, weights, message in [([member, {"family": "mix", "args": {}}], [1.0, 1.0], "a mix member must be"),
                                      ([member, member], [1.0, float("nan")], "weights must be finite")]:
        bad = {**crafted, "model_args": {**crafted["model_args"], "members": members, "weights": weights}}
        with pytest.raises(CheckpointError, match=message):
            ckpt.validate(bad, "crafted")


@pytest.mark.parametrize("damage, message", [
    (lambda path: path.write_bytes(path.read_bytes()[:1000]), "which cannot be used"),
    (lambda path: path.unlink(), "which cannot be used"),
    (lambda path: ckpt.save({**torch.load(path, weights_only=True), "finished": False}, path),
     "which is from a run that had not finished"),
])
def test_a_published_model_that_cannot_be_used_is_an_error_not_an_older_model(hand_checkpoint, tmp_path, damage,
                                                                              message):
    save_dir, good = tmp_path / "save", payload_of(hand_checkpoint)
    older = ckpt.publish(save_dir, "rnn", good)
    newer = ckpt.publish(save_dir, "gru", good)
    os.utime(older, (2e9, 2e9))  # the older run's file is even the newest by time
    damage(newer)
    with pytest.raises(CheckpointError, match=f"latest names gru_classification_best.bin, {message}.*--checkpoint"):
        ckpt.load_default(save_dir)

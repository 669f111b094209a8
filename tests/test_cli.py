"""The scripts as a user runs them: from another folder, through subprocesses, checking output and exit codes."""
import json

from tests.conftest import run_script


def test_train_then_predict_end_to_end(tiny_folder, tmp_path):
    save = tmp_path / "save"
    result = run_script("train.py", "--data", str(tiny_folder), "--save-dir", str(save), "--model", "lstm",
                        "--epochs", "2", "--max-steps", "3", "--batch-size", "8", "--hidden-size", "8",
                        "--val-fraction", "0.25", "--test-fraction", "0.25")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config: {")
    assert "stopped after 3 steps" in result.stdout and "balanced accuracy" in result.stdout
    assert {p.name for p in save.iterdir()} >= {"lstm_classification_1.bin", "lstm_classification_best.bin",
                                                 "lstm_history.json", "lstm_curves.png"}
    history = json.loads((save / "lstm_history.json").read_text())
    assert history["epochs"][0]["epoch"] == 1 and "accuracy" in history["test"]
    assert (save / "lstm_curves.png").read_bytes()[:4] == b"\x89PNG"

    checkpoint = str(save / "lstm_classification_best.bin")
    result = run_script("predict.py", "Nakamura", "--checkpoint", checkpoint)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in {"English", "Japanese", "Russian"}


def test_predict_topk_json_stdin_and_bad_names(tiny_checkpoint):
    ckpt = str(tiny_checkpoint)
    result = run_script("predict.py", "Nakamura", "Ivanov", "--topk", "2", "--checkpoint", ckpt)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Nakamura: ") and lines[0].count(",") == 1

    result = run_script("predict.py", "Ivanov", "--json", "--topk", "3", "--checkpoint", ckpt)
    record = json.loads(result.stdout)
    assert record["name"] == "Ivanov" and record["country"] == record["top"][0]["country"]
    assert abs(sum(t["probability"] for t in record["top"]) - 1) < 1e-4

    result = run_script("predict.py", "-", "--checkpoint", ckpt, stdin="Smith\n\nTanaka\n")
    assert result.returncode == 0 and len(result.stdout.strip().splitlines()) == 2

    result = run_script("predict.py", "Smith", "123", "Maxa/B", "--checkpoint", ckpt)
    assert result.returncode == 1
    assert "error: name '123' has no letters" in result.stderr
    assert "'/'" in result.stderr  # the unknown character is named
    assert [line.split("\t")[0] for line in result.stdout.strip().splitlines()] == ["Smith", "Maxa/B"]


def test_predict_without_a_checkpoint_says_to_train_first(tmp_path):
    result = run_script("predict.py", "lucy", "--checkpoint", str(tmp_path / "missing.bin"))
    assert result.returncode == 1 and "python train.py" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_predict_rejects_a_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x80\x04garbage")
    result = run_script("predict.py", "lucy", "--checkpoint", str(bad))
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_train_on_malformed_data_names_the_line(tmp_path):
    data = tmp_path / "bad.tsv"
    data.write_text("Abe\tJapanese\nSmith English\n", encoding="utf-8")
    result = run_script("train.py", "--data", str(data), "--save-dir", str(tmp_path / "s"))
    assert result.returncode == 1
    assert f"{data}:2:" in result.stderr and "Traceback" not in result.stderr


def test_train_refuses_impossible_settings_before_reading_data(tmp_path):
    for flags, message in ((["--epochs", "0"], "--epochs must be at least 1"),
                           (["--batch-size", "0"], "--batch-size must be at least 1"),
                           (["--test-fraction", "0.7"], "between 0 and 0.5")):
        result = run_script("train.py", "--data", str(tmp_path / "nowhere.tsv"), *flags)
        assert result.returncode == 2 and message in result.stderr

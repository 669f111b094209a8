"""train.py under torchrun: two CPU processes (gloo on 127.0.0.1) write one set of checkpoints, the same format as
a single process's, that predict.py loads."""
import socket
import subprocess
import sys

import pytest

from models import checkpoint as ckpt
from tests.conftest import ROOT, TINY_FRACTIONS, run_script, write_tiny


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_one_model_that_predict_loads(tmp_path):
    data, save = write_tiny(tmp_path / "tiny.tsv"), tmp_path / "save"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", str(ROOT / "train.py"), "--model", "gru", "--data", str(data),
               "--save-dir", str(save), "--epochs", "2", "--batch-size", "4", "--hidden-size", "8", "--device", "cpu",
               *TINY_FRACTIONS]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT.parent, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("test (") == 1 and "2 processes" in result.stdout  # rank 0 alone speaks
    assert sorted(p.name for p in save.glob("*.bin")) == ["gru_classification_best.bin"]  # published once
    assert sorted(p.name for p in save.glob("runs/*/*.bin")) == ["gru_classification_1.bin", "gru_classification_2.bin",
                                                                 "gru_classification_best.bin"]  # one run folder
    payload = ckpt.load(save / "gru_classification_best.bin")
    assert payload["finished"] and not any(key.startswith("module.") for key in payload["model_state"])  # not DDP's
    predicted = run_script("predict.py", "Nakamura", "--checkpoint", str(save / "gru_classification_best.bin"))
    assert predicted.returncode == 0 and predicted.stdout.strip() in payload["countries"]

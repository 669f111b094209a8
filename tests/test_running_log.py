"""train.py's RunningLog: the original project's "mean of every 100 samples" curve and the epoch means."""
import pytest

from train import RunningLog


def test_window_points_and_epoch_means():
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

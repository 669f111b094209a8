"""The training step and the evaluation pass, shared by train.py and the benchmark; the optimiser, its
schedule, the class weights and the class-mix correction they use."""
import math
import random

import numpy as np
import torch
import torch.nn.functional as F

from utils.data import drop_letters
from utils.errors import UserError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA


def pick_device(name: str) -> torch.device:
    """auto: cuda, then mps, then cpu; a named device that is not there is a UserError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a torch device (cpu, cuda, cuda:1, mps)") from None
    if device.type not in ("cpu", "cuda", "mps"):  # torch names more (meta, vulkan, xla) that cannot run these models
        raise UserError(f"--device {name}: not a device these models run on (cpu, cuda, cuda:1, mps)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: no MPS device here")
    return device


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam; on CPU or CUDA its fused kernel, which updates each parameter in one pass."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda") or None)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                   warmup_fraction: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate per step: a short linear warm-up, then a cosine down to 0."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def class_counts(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Rows per class, [n_classes] float, at least 1 so no class divides by zero."""
    return torch.bincount(labels, minlength=n_classes).float().clamp(min=1)


def class_weights(labels: torch.Tensor, n_classes: int, power: float) -> torch.Tensor:
    """Cross-entropy weights (n / (K * n_c)) ** power, [n_classes]: power 1 is scikit-learn's "balanced"
    (each class weighs the same in total), 0 no weighting, in between a compromise."""
    return (len(labels) / (n_classes * class_counts(labels, n_classes))) ** power


def train_step(model, batch, optimizer, scheduler, loss_weight: torch.Tensor | None, letter_dropout: float,
               unknown_index: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on one batch; returns (mean loss, correct count), both still on the device."""
    letters, lengths, labels = batch
    letters, labels = letters.to(device), labels.to(device)
    letters = drop_letters(letters, letter_dropout, unknown_index)  # [B, T]
    logits = model(letters, lengths)  # [B, n_countries]
    loss = F.cross_entropy(logits, labels, weight=loss_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.detach(), (logits.argmax(dim=1) == labels).sum()


@torch.inference_mode()
def evaluate(model, loader, offset: torch.Tensor, device: torch.device) -> tuple[list[int], torch.Tensor, float]:
    """(true labels, logits [N, n_countries] with the prediction offset, mean cross-entropy) over a loader,
    in the loader's order; restores the model's training mode."""
    was_training = model.training
    model.eval()
    y_true, logits_all, loss_sum = [], [], 0.0
    offset = offset.to(device)
    for letters, lengths, labels in loader:
        logits = model(letters.to(device), lengths) + offset  # [B, n_countries]
        loss_sum += F.cross_entropy(logits, labels.to(device), reduction="sum").item()
        y_true += labels.tolist()
        logits_all.append(logits.float().cpu())
    model.train(was_training)
    return y_true, torch.cat(logits_all), loss_sum / max(1, len(y_true))


class RunningLog:
    """Training loss and accuracy: averaged over every `every` samples (the original project's curve)
    into `history`, and over the current epoch."""

    def __init__(self, every: int):
        self.every, self.seen = every, 0
        self.history = {"samples": [], "loss": [], "accuracy": [], "epochs": []}
        self.window = [0.0, 0, 0]  # loss sum, correct, count
        self.epoch = [0.0, 0, 0]

    def state(self) -> dict:
        """Everything needed to continue the log exactly (plain data, for a resume checkpoint)."""
        return {"seen": self.seen, "history": self.history, "window": list(self.window), "epoch": list(self.epoch)}

    def load_state(self, state: dict) -> None:
        self.seen, self.history = state["seen"], state["history"]
        self.window, self.epoch = list(state["window"]), list(state["epoch"])

    def start_epoch(self) -> None:
        self.epoch = [0.0, 0, 0]

    def add(self, loss_sum: float, correct: float, count: int) -> None:
        self.seen += count
        for totals in (self.window, self.epoch):
            totals[0] += loss_sum
            totals[1] += correct
            totals[2] += count
        if self.window[2] >= self.every:
            self.history["samples"].append(self.seen)
            self.history["loss"].append(self.window[0] / self.window[2])
            self.history["accuracy"].append(self.window[1] / self.window[2])
            self.window = [0.0, 0, 0]

    def epoch_means(self) -> tuple[float, float]:
        """(mean loss, accuracy) over the epoch so far."""
        loss_sum, correct, count = self.epoch
        return loss_sum / max(1, count), correct / max(1, count)


class Distributed:
    """One process of a torchrun job (or the only process of a plain run): its rank, the job's size, and the
    few collective operations training needs. `gloo` on CPU, `nccl` on CUDA, chosen from the device."""

    def __init__(self, rank: int = 0, world: int = 1):
        self.rank, self.world = rank, world

    @property
    def main(self) -> bool:
        """Only the main process logs, plots and writes files."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device_name: str) -> tuple["Distributed", torch.device]:
        """The job torchrun started (RANK, WORLD_SIZE, LOCAL_RANK in the environment), and this process's device."""
        import os

        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls(), pick_device(device_name)
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = pick_device(device_name)
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), world), device

    def shard(self, batches: list) -> list:
        """This process's share of an epoch's batches: every world-th one, from an equal number for each
        process (the last world - 1 batches at most are left out, so every process takes as many steps)."""
        usable = len(batches) // self.world * self.world
        return batches[self.rank:usable:self.world]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the processes."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()

"""The optimiser, and the learning rate over a run: constant, or warm-up then cosine."""
import math

import torch

SCHEDULES = ("constant", "cosine")


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam; on a CPU or CUDA device its fused kernel, which updates each parameter in one pass instead of
    about ten tensor operations (a few percent of a small model's step)."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda") or None)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                   warmup_fraction: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step multiplier of the learning rate: constant, or a short linear warm-up then a cosine to 0."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))  # the balanced sampler may run a few steps over
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

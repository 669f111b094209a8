"""Probabilities a user can trust: a temperature fitted on validation, and the weights of a mix of models.

    T = fit_temperature(val_logits, val_labels)          # stored in the checkpoint; logits / T when predicting
    w = fit_mix_weights(member_log_probs, val_labels)    # a log-linear mix's weights

The class mix a model assumes, and a user's own, is utils/class_mix.py's.
"""
import math

import torch


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, steps: int = 100) -> float:
    """The T > 0 whose softmax(logits / T) has the smallest expected calibration error on held-out rows.

    One parameter, so it changes how sure the model is, never which country it picks. The search runs over a
    log-spaced grid from a quarter to four times the T that minimises the cross-entropy (Guo et al., 2017):
    cross-entropy alone is pulled by the few confidently "wrong" names of noisy real-world labels and left the
    real-surname model less sure than its answers deserve (docs/tuning.md).
    """
    from utils.metrics import expected_calibration_error

    logits, labels = logits.detach().double(), torch.as_tensor(labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    by_entropy = float(log_t.detach().exp())
    if not (math.isfinite(by_entropy) and by_entropy > 0):
        return 1.0
    grid = (by_entropy * torch.logspace(-2, 2, 81, base=2, dtype=torch.float64)).tolist()  # T/4 .. 4T
    errors = [expected_calibration_error(torch.softmax(logits / t, dim=1), labels) for t in grid]
    # the smallest error; among equal ones, the T nearest the cross-entropy's
    return min(zip(errors, [abs(math.log(t / by_entropy)) for t in grid], grid))[2]


def fit_mix_weights(member_log_probs: torch.Tensor, labels, steps: int = 200) -> list[float]:
    """The weights w_m > 0 of a log-linear mix, sum_m w_m log p_m(c | x), that minimise the cross-entropy on
    held-out rows; member_log_probs [M, N, n_countries]. Like a temperature per member, they also calibrate."""
    parts, labels = member_log_probs.detach().double(), torch.as_tensor(labels)
    log_w = torch.zeros(len(parts), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_w], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.einsum("m,mnc->nc", log_w.exp(), parts), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return log_w.detach().exp().tolist()

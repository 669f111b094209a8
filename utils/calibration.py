"""Probabilities a user can trust: a temperature fitted on validation, and the user's own class mix.

    T = fit_temperature(val_logits, val_labels)          # stored in the checkpoint; logits / T when predicting
    shift = prior_shift(assumed_prior, read_prior("uniform", countries, data_prior))   # Bayes' rule for a new mix
"""
import json
import math
from pathlib import Path

import torch

from utils.errors import UserError

PRIORS = ("model", "data", "uniform")  # or a FILE of country shares


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


def read_prior(spec: str, countries: list[str], data_prior) -> torch.Tensor | None:
    """The class mix a user expects, [n_countries] shares summing to 1; None for "model" (the mix the model's
    probabilities already assume).

    `spec` is "model", "data" (`data_prior`: the training rows' mix), "uniform", or a JSON file
    ({"Spanish": 0.8, "English": 0.2}) or TSV file (country<TAB>share lines). Countries a file leaves
    out get share 0; shares are normalised.
    """
    if spec == "model":
        return None
    if spec == "data":
        return torch.as_tensor(data_prior, dtype=torch.float64)
    if spec == "uniform":
        return torch.full((len(countries),), 1 / len(countries), dtype=torch.float64)
    path = Path(spec)
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_PRIOR_BYTES + 1).decode("utf-8-sig")
    except OSError as e:
        raise UserError(f"--prior {spec}: not model, data, uniform or a readable file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the prior as UTF-8") from None
    if len(text) > MAX_PRIOR_BYTES:
        raise UserError(f"{path}: larger than {MAX_PRIOR_BYTES:,} bytes; a prior is one share per country")
    try:
        shares = json.loads(text) if path.suffix.lower() == ".json" else {
            country.strip(): float(share) for country, share in
            (line.split("\t") for line in text.splitlines() if line.strip())}
    except (ValueError, RecursionError):  # RecursionError: nesting too deep for the parser
        raise UserError(f"{path}: expected a JSON object or country<TAB>share lines") from None
    if not isinstance(shares, dict):
        raise UserError(f"{path}: expected a JSON object of country: share")
    unknown = sorted(set(shares) - set(countries))
    if unknown:
        raise UserError(f"{path}: countries the model does not know: {', '.join(unknown[:10])[:500]}")
    values = [prior_share(shares.get(country, 0.0), country, path) for country in countries]
    top = max(values)
    if top <= 0:
        raise UserError(f"{path}: the shares add up to 0")
    scaled = torch.tensor(values, dtype=torch.float64) / top  # by the largest first: no sum overflows
    return scaled / scaled.sum()


MAX_PRIOR_BYTES = 1 << 20


def prior_share(share, country: str, path) -> float:
    """One country's share from a prior file: a finite number >= 0; UserError for anything else (true, "0.5",
    null, NaN, infinity, a negative number, an integer too large for a float)."""
    if isinstance(share, int) and not isinstance(share, bool):
        share = float(share) if abs(share) < 1e308 else math.inf
    if not isinstance(share, float) or not math.isfinite(share) or share < 0:
        raise UserError(f"{path}: the share of {country} must be a finite number >= 0, not {str(share)[:40]}")
    return share


def prior_shift(assumed_prior: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """log pi_new(c) - log pi_assumed(c), [n_countries]: added to a model's log-probabilities and renormalised,
    it turns p(c | x) under the mix the model assumes into p(c | x) under the new one (Bayes' rule)."""
    if target is None:
        return torch.zeros(len(assumed_prior))
    return (target.log() - torch.as_tensor(assumed_prior, dtype=torch.float64).log()).float()


def softened_prior(prior: torch.Tensor, posthoc_adjust: float) -> torch.Tensor:
    """The class mix a model assumes after the post-hoc adjustment took posthoc_adjust * log prior off its
    logits: prior ** (1 - posthoc_adjust), normalised."""
    weights = torch.as_tensor(prior, dtype=torch.float64) ** (1 - posthoc_adjust)
    return weights / weights.sum()


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

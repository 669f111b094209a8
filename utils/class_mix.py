"""The class mix, in one place: from the rows a model was trained on to the population a user asks about.

    shares = class_shares(row_labels, n)                       # each country's share of the training rows
    offset = row_offset(trained_labels, row_labels, n)         # trained on distinct names, answers for the rows
    offset = offset + posthoc_offset(shares, power)            # after training: part way towards equal countries
    assumed = assumed_prior(shares, power)                     # the mix its probabilities then assume (saved)
    shift = prior_shift(assumed, read_prior("uniform", countries, shares))   # a user's mix, by Bayes' rule

Training writes the offset, the training shares and the assumed mix into the checkpoint; the predictor
adds the offset to the logits and, for a user's prior, the shift to the log-probabilities.
"""
import json
import math
from collections import Counter
from pathlib import Path

import torch

from utils.errors import UserError

PRIORS = ("model", "data", "uniform")  # or a FILE of country shares


def class_shares(labels, n_classes: int) -> torch.Tensor:
    """Each class's share of `labels`, [n_classes] float64 (0 for a class with no row)."""
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=n_classes).double()
    return counts / counts.sum()


def log_prior(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Log of the class shares, [n_classes] float, every class counted at least once so none is -inf."""
    counts = torch.bincount(labels, minlength=n_classes).float().clamp(min=1)
    return (counts / len(labels)).log()


def row_offset(trained_labels: torch.Tensor, row_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """What is added to the logits of a model trained on each distinct name once, [n_classes]: each class's odds
    times its share of every row of the training split over its share of the names trained on, so predictions
    follow the mix the test split counts (Arabic is 85 distinct training names but 10% of the rows)."""
    return log_prior(row_labels, n_classes) - log_prior(trained_labels, n_classes)


def posthoc_offset(train_shares: torch.Tensor, power: float) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al., 2021), [n_classes]: added to the logits after training, it
    takes `power` times the log class share off, moving decisions towards equal classes (1: all the way)."""
    return -power * torch.as_tensor(train_shares, dtype=torch.float64).log().float()


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
        pairs = json.loads(text, object_pairs_hook=list) if path.suffix.lower() == ".json" else [
            (country.strip(), float(share)) for country, share in
            (line.split("\t") for line in text.splitlines() if line.strip())]
    except (ValueError, RecursionError):  # RecursionError: nesting too deep for the parser
        raise UserError(f"{path}: expected a JSON object or country<TAB>share lines") from None
    if not isinstance(pairs, list) or not all(isinstance(pair, tuple) for pair in pairs):  # each object: a list
        raise UserError(f"{path}: expected a JSON object of country: share")
    shares = dict(pairs)
    if len(shares) < len(pairs):  # which share was meant? the last would win without a word
        twice = sorted(country for country, n in Counter(country for country, _ in pairs).items() if n > 1)
        raise UserError(f"{path}: {', '.join(twice[:10])[:500]} given more than once; give each country one share")
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


def assumed_prior(prior: torch.Tensor, posthoc_adjust: float) -> torch.Tensor:
    """The class mix a model assumes after the post-hoc adjustment took posthoc_adjust * log prior off its
    logits: prior ** (1 - posthoc_adjust), normalised."""
    weights = torch.as_tensor(prior, dtype=torch.float64) ** (1 - posthoc_adjust)
    return weights / weights.sum()



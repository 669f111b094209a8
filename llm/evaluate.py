"""Score the language model on labelled names with the RNN's metrics, plus what it cost."""
import random

from llm.classify import LLMClassifier
from utils.metrics import NO_ANSWER, classification_metrics


def seeded_subset(rows: list[int], limit: int, seed: int) -> list[int]:
    """`limit` of the rows (all if limit <= 0 or more than there are), the same ones for the same seed, in order."""
    if limit <= 0 or limit >= len(rows):
        return list(rows)
    return sorted(random.Random(seed).sample(list(rows), limit))


def evaluate_llm(classifier: LLMClassifier, names: list[str], y_true: list[int], progress: bool = True) -> dict:
    """Ask about normalised `names` and compare with the true labels (indices into classifier.countries).

    Returns y_pred (a label, or None for no answer), the metrics of utils.metrics (a no answer counts as
    wrong), how many names got no answer, the tokens the answers took (all of them, and those paid in this
    run, the rest coming from the cache) and the mean wall time per name.
    """
    answers = classifier.classify(names, progress=progress)
    label_of = {country: i for i, country in enumerate(classifier.countries)}
    y_pred = [label_of[a.country] if a.country is not None else None for a in answers]
    distinct = {a.name: a for a in answers}.values()  # a name asked twice was paid once
    return {
        "y_pred": y_pred,
        "metrics": classification_metrics(y_true, [NO_ANSWER if p is None else p for p in y_pred]),
        "no_answer": sum(p is None for p in y_pred),
        "names": len(names),
        "model": classifier.cfg.model,
        "shots": len(classifier.examples),
        "tokens": round(sum(a.tokens for a in distinct)),
        "tokens_this_run": round(sum(a.tokens for a in distinct if not a.cached)),
        "seconds_per_name": sum(a.seconds for a in distinct) / max(1, len(distinct)),
        "from_cache": sum(a.cached for a in distinct),
    }

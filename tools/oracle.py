"""The best any name -> country classifier can do on a split: one label per distinct name, chosen knowing the answers.

    python -m tools.oracle --seed 0       # from the repository root

A name filed under several countries (99 of the 100 Scottish names are also English) can only be
right for one of them, so no model reaches 1.0. For accuracy the best label is the name's most common
country in the split; for balanced accuracy it is the one with the largest share of its country's rows.
"""
import argparse
from collections import Counter, defaultdict

from utils.errors import run_script
from utils.metrics import classification_metrics


def oracle_predictions(names: list[str], labels: list[int], balanced: bool = False) -> list[int]:
    """For each row, the single label its name gets: the one that maximises (balanced) accuracy."""
    support = Counter(labels)
    by_name = defaultdict(Counter)
    for name, label in zip(names, labels):
        by_name[name][label] += 1

    def gain(counts: Counter, label: int) -> tuple[float, int]:
        return (counts[label] / support[label] if balanced else counts[label], -label)  # ties: lowest label

    best = {name: max(counts, key=lambda label: gain(counts, label)) for name, counts in by_name.items()}
    return [best[name] for name in names]


def main(argv=None) -> None:
    from config.config import TrainConfig
    from utils.data import SurnameData

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=defaults.data, help=f"names.tsv or a names/ folder (default: {defaults.data})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="split seed, as train.py's --seed")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    args = parser.parse_args(argv)
    data = SurnameData.build(args.data, args.val_fraction, args.test_fraction, args.seed)
    rows = data.split.test
    names, labels = [data.names[r] for r in rows], [data.labels[r] for r in rows]
    print(f"test split: {len(rows)} rows, {len(set(names))} distinct names")
    for balanced in (False, True):
        m = classification_metrics(labels, oracle_predictions(names, labels, balanced))
        print(f"best label for {'balanced accuracy' if balanced else 'accuracy'}: accuracy {m['accuracy']:.3f}  "
              f"balanced accuracy {m['balanced_accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}")


if __name__ == "__main__":
    run_script(main)

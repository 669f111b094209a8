"""Train a character-level RNN / LSTM / GRU that tells a surname's country of origin.

    python train.py                                    # fetches data/names/ on the first run
    python train.py --data ../shared/data/names.tsv    # or a folder of <Country>.txt files
    python train.py --model lstm --epochs 20 --hidden-size 256
    python train.py --balance weighted --balance-power 1   # every country weighs the same in the loss
    python train.py --members 10 --posthoc-adjust 0.4 --select mean   # ten models that predict together

Writes to save_model/: <model>_classification_<epoch>.bin after every epoch,
<model>_classification_best.bin (best on validation), <model>_history.json and
<model>_curves.png; prints accuracy, balanced accuracy and macro-F1 on the held-out test split.
"""
import argparse
import copy
import json
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from config.config import ALPHABET, CELLS, DATA_URL, DEFAULT_DATA, TrainConfig
from models.classifier import ModelArgs
from models.ensemble import build_model, members_of
from utils.balance import BALANCE, PRIORS, balanced_loader, class_weights, log_prior, prediction_offset
from utils.checkpoint import save_checkpoint
from utils.data import resolve_data
from utils.dataset import NamesDataset, drop_letters, make_loader
from utils.errors import UserError
from utils.metrics import SELECT, classification_metrics, selection_score
from utils.prepare import Prepared, prepare, split_of
from utils.schedule import SCHEDULES, make_optimizer, make_scheduler
from utils.seed import seed_everything
from utils.split import Split
from utils.text import Alphabet

HELP = {
    "data": "a names.tsv file (name<TAB>country) or a folder of <Country>.txt files",
    "model": "recurrent cell",
    "epochs": "passes over the training split",
    "lr": "Adam learning rate (the peak, with --schedule cosine)",
    "batch_size": "names per optimiser step",
    "hidden_size": "recurrent state size",
    "num_layers": "stacked recurrent layers",
    "bidirectional": "read names in both directions",
    "members": "models of this shape trained side by side, each from its own initial weights and batch order and "
               "on its own loss, that predict with their mean probabilities (1: one model)",
    "dropout": "dropout between recurrent layers and before the output layer",
    "schedule": "learning rate over the run: constant, or a 5%% linear warm-up then a cosine down to 0",
    "dedupe": "train on each distinct (name, country) pair once, however often the data repeats it",
    "balance": "counter the class imbalance: class-weighted loss, class-balanced sampling, or logit adjustment",
    "balance_power": "strength of --balance: 1 counters the imbalance fully, 0.5 halfway (a power on the weights)",
    "prior": "class mix the predictions assume: that of every row of the training split (the mix the test split "
             "counts), or that of the distinct names trained on (they differ with --dedupe)",
    "posthoc_adjust": "after training, move decisions towards equal countries by subtracting this power of the "
                      "log class prior from the logits (post-hoc logit adjustment; 0: off); combines with --balance",
    "letter_dropout": "share of letters replaced by the unknown slot while training, so no single letter decides",
    "select": "the validation score that picks the saved best epoch: accuracy, balanced accuracy, or the mean of "
              "the two (when both matter)",
    "seed": "seed for the split, the initial weights and the batch order",
    "val_fraction": "share of distinct names held out for validation",
    "test_fraction": "share of distinct names held out for the final test",
    "device": "auto picks cuda, then mps, then cpu",
    "threads": "CPU threads for torch, 0 for torch's choice; small batches gain little from more, and lose badly "
               "when the cores are busy with other work",
    "save_dir": "where checkpoints, history and curves go",
    "max_steps": "stop after this many optimiser steps (0: no limit); for smoke tests",
    "log_every": "samples between two points of the loss/accuracy history",
}


def parse_args(argv=None) -> TrainConfig:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if field.type is bool or isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=HELP[field.name])
        else:
            choices = {"model": CELLS, "balance": BALANCE, "schedule": SCHEDULES, "prior": PRIORS,
                       "select": SELECT}.get(field.name)
            parser.add_argument(flag, type=type(default), default=default, choices=choices,
                                help=f"{HELP[field.name]} (default: {default})")
    cfg = TrainConfig(**vars(parser.parse_args(argv)))
    for name in ("epochs", "batch_size", "hidden_size", "num_layers", "members", "log_every"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if cfg.lr <= 0 or not (0 <= cfg.dropout < 1 and 0 <= cfg.letter_dropout < 1):
        parser.error("--lr must be positive, --dropout and --letter-dropout in [0, 1)")
    if min(cfg.max_steps, cfg.threads, cfg.balance_power, cfg.posthoc_adjust) < 0:
        parser.error("--max-steps, --threads, --balance-power and --posthoc-adjust must not be negative")
    if not (0 < cfg.val_fraction < 0.5 and 0 < cfg.test_fraction < 0.5):
        parser.error("--val-fraction and --test-fraction must be between 0 and 0.5")
    return cfg


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@torch.inference_mode()
def predict_all(model, loader, device) -> tuple[list[int], list[int], float]:
    """(true labels, predicted labels, mean loss) over a loader, in the loader's order; in eval mode the
    model adds its class-mix offset, so these are the predictions predict.py would make."""
    model.eval()
    y_true, y_pred, loss_sum = [], [], 0.0
    for letters, lengths, labels in loader:
        logits = model(letters.to(device), lengths)  # [B, n_countries]
        loss_sum += F.cross_entropy(logits, labels.to(device), reduction="sum").item()
        y_true += labels.tolist()
        y_pred += logits.argmax(dim=1).tolist()
    return y_true, y_pred, loss_sum / max(1, len(y_true))


@dataclass
class RunData:
    """The data of one run: every row, the split, and the loaders over it."""
    path: Path
    data: Prepared
    alphabet: Alphabet
    split: Split
    train_set: NamesDataset  # what the model trains on: deduplicated with --dedupe
    train_loaders: list[DataLoader]  # one per member, each in its own shuffled order (member 0's seeded by --seed)
    val_loader: DataLoader
    test_loader: DataLoader


def load_data(cfg: TrainConfig) -> RunData:
    """Read, normalise and split the data by name; print what was found."""
    data_path = resolve_data(cfg.data, DEFAULT_DATA, DATA_URL)
    data = prepare(data_path)
    names, labels = data.names, data.labels
    alphabet = Alphabet(ALPHABET)
    odd = sorted({ch for name in names for ch in alphabet.unknown_chars(name)})
    n_odd = sum(1 for name in names if alphabet.unknown_chars(name))
    split = split_of(data, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    print(f"data: {len(names)} names, {len(data.countries)} countries from {data_path}; "
          f"split train/val/test {len(split.train)}/{len(split.val)}/{len(split.test)} rows, grouped by name")
    if n_odd:
        print(f"note: {n_odd} names hold characters outside the alphabet {odd}, read as 'unknown'")

    def part(rows):
        return NamesDataset([names[r] for r in rows], [labels[r] for r in rows], alphabet)

    train_rows = split.train
    if cfg.dedupe:  # Arabic is 85 names repeated ~18 times each in the training split
        train_rows = list({(names[r], labels[r]): r for r in train_rows}.values())
    train_set = part(train_rows)

    def train_loader(seed: int) -> DataLoader:
        if cfg.balance == "sampler":
            return balanced_loader(train_set, len(data.countries), cfg.batch_size, seed, cfg.balance_power)
        return make_loader(train_set, cfg.batch_size, shuffle=True, seed=seed)

    train_loaders = [train_loader(cfg.seed + 1000 * member) for member in range(cfg.members)]
    return RunData(Path(data_path), data, alphabet, split, train_set, train_loaders,
                   make_loader(part(split.val), 1024, shuffle=False), make_loader(part(split.test), 1024, shuffle=False))


class RunningLog:
    """Training loss and accuracy: averaged over every `every` samples (the original project's curve)
    into `history`, and over the current epoch."""

    def __init__(self, every: int):
        self.every, self.seen = every, 0
        self.history = {"samples": [], "loss": [], "accuracy": [], "epochs": []}
        self.window = [0.0, 0, 0]  # loss sum, correct, count
        self.epoch = [0.0, 0, 0]

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


def train(cfg: TrainConfig) -> dict:
    """Train one model as `cfg` says; returns the history (with test metrics), parameter count and paths."""
    print("config:", json.dumps(asdict(cfg)))
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    run = load_data(cfg)
    countries, alphabet = run.data.countries, run.alphabet

    # the loss's class weights and logit offset (training only), from the training split's class frequencies
    weight, loss_offset = None, 0.0
    if cfg.balance == "weighted":
        weight = class_weights(run.train_set.labels, len(countries), cfg.balance_power).to(device)  # [n_countries]
    elif cfg.balance == "logit-adjust":
        loss_offset = log_prior(run.train_set.labels, len(countries), cfg.balance_power).to(device)  # [n_countries]

    # --- model ---
    model_args = ModelArgs(cfg.model, alphabet.size, len(countries), cfg.hidden_size,
                           cfg.num_layers, cfg.bidirectional, cfg.dropout)
    model = build_model(model_args, cfg.members).to(device)
    members = members_of(model)
    # what evaluation adds to the logits: the training rows' class mix, and the post-hoc adjustment
    row_labels = torch.tensor([run.data.labels[r] for r in run.split.train])  # [training rows]
    offset = prediction_offset(run.train_set.labels, row_labels, len(countries), cfg.prior, cfg.posthoc_adjust)
    for member in members:
        member.logit_offset.copy_(offset)
    optimizer = make_optimizer(model, cfg.lr, device)
    steps_per_epoch = min(len(loader) for loader in run.train_loaders)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = make_scheduler(optimizer, cfg.schedule, total_steps)
    n_params = sum(p.numel() for p in model.parameters())
    shape = f"{cfg.members} x {cfg.model}" if cfg.members > 1 else cfg.model
    print(f"model: {shape}, {n_params:,} parameters, on {device}")

    save_dir = Path(cfg.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    base = {
        "model_args": asdict(model_args), "members": cfg.members, "alphabet": alphabet.letters, "countries": countries,
        "config": {**asdict(cfg), "data": str(run.path.resolve())},
        "split": {"seed": cfg.seed, "val_fraction": cfg.val_fraction, "test_fraction": cfg.test_fraction,
                  "data": str(run.path.resolve()), "data_sha256": run.data.sha256},
    }
    log = RunningLog(cfg.log_every)
    best, best_score = None, -1.0
    best_path = save_dir / f"{cfg.model}_classification_best.bin"
    best_state = None
    steps = 0
    start = time.perf_counter()

    # --- training ---
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        log.start_epoch()
        progress = tqdm(zip(*run.train_loaders), total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
        for batches in progress:
            # each member learns on its own batch, hidden letters and loss; the mean keeps the scale of one model
            loss, hits = 0.0, []
            for member, (letters, lengths, labels) in zip(members, batches):
                letters, labels = letters.to(device), labels.to(device)
                letters = drop_letters(letters, cfg.letter_dropout, alphabet.unknown_index)  # [B, T]
                logits = member(letters, lengths)  # [B, n_countries]
                loss = loss + F.cross_entropy(logits + loss_offset, labels, weight=weight) / len(members)
                hits.append((logits.argmax(dim=1) == labels).sum())  # stays on the device: one sync per step
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
            # the running log counts member 0's names, at the members' mean loss and accuracy
            count = len(batches[0][2])
            accuracy = sum(h / len(b[2]) for h, b in zip(torch.stack(hits).tolist(), batches)) / len(members)
            log.add(loss.item() * count, accuracy * count, count)
            if cfg.max_steps and steps >= cfg.max_steps:
                break

        y_true, y_pred, val_loss = predict_all(model, run.val_loader, device)
        val = classification_metrics(y_true, y_pred, len(countries))
        train_loss, train_accuracy = log.epoch_means()
        record = {"epoch": epoch, "samples": log.seen, "train_loss": train_loss, "train_accuracy": train_accuracy,
                  "val_loss": val_loss, **{f"val_{k}": v for k, v in val.items()},
                  "seconds": time.perf_counter() - start}
        log.history["epochs"].append(record)
        print(f"epoch {epoch:2d}/{cfg.epochs}  loss {train_loss:.4f}  train acc {train_accuracy:.3f}  "
              f"val acc {val['accuracy']:.3f}  val bal acc {val['balanced_accuracy']:.3f}  {record['seconds']:.1f}s")

        checkpoint = {**base, "model_state": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "epoch": epoch, "metrics": record}
        save_checkpoint(checkpoint, save_dir / f"{cfg.model}_classification_{epoch}.bin")
        score = selection_score(val, cfg.select)
        if score > best_score:
            best, best_score = record, score
            best_state = copy.deepcopy(checkpoint)
            save_checkpoint(best_state, best_path)
        if cfg.max_steps and steps >= cfg.max_steps:
            print(f"stopped after {steps} steps (--max-steps)")
            break
    train_seconds = time.perf_counter() - start

    # --- the untouched test split, once, with the best-on-validation weights ---
    model.load_state_dict(best_state["model_state"])
    y_true, y_pred, _ = predict_all(model, run.test_loader, device)
    test = classification_metrics(y_true, y_pred, len(countries))
    best_state["metrics"] = {**best_state["metrics"], **{f"test_{k}": v for k, v in test.items()}}
    save_checkpoint(best_state, best_path)
    history = {**log.history, "test": {"epoch": best["epoch"], **test}, "seconds": train_seconds,
               "parameters": n_params}
    history_path = save_dir / f"{cfg.model}_history.json"
    history_path.write_text(json.dumps(history, indent=1))

    from utils.plot import plot_history  # matplotlib only here, at the end

    curves_path = plot_history(history, save_dir / f"{cfg.model}_curves.png", title=f"{cfg.model} on {run.path.name}")
    print(f"test ({len(y_true)} names, best epoch {best['epoch']}): accuracy {test['accuracy']:.3f}  "
          f"balanced accuracy {test['balanced_accuracy']:.3f}  macro-F1 {test['macro_f1']:.3f}")
    print(f"saved {best_path}, {history_path}, {curves_path}  ({time.perf_counter() - start:.1f}s)")
    return {"history": history, "best_path": best_path, "history_path": history_path}


def main(argv=None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        sys.exit(f"error: {e}")

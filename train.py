"""Train a surname -> country classifier and report its score on a held-out test split.

    python train.py                                   # the embedded data set, the default model
    python train.py --model lstm --hidden-size 256    # another family or size
    python train.py --data my_names.tsv               # name<TAB>country lines, or a folder of <Country>.txt
    python train.py --help                            # every flag, with its default

Writes to save_model/: <model>_classification_<epoch>.bin after every epoch,
<model>_classification_best.bin (best on validation, with its test score), <model>_history.json and
<model>_curves.png. The test split is read once, at the end, with the best-on-validation weights.
"""
import argparse
import json
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from config.config import ALPHABET, TrainConfig
from utils.errors import UserError


def parse_args(argv=None) -> TrainConfig:
    """TrainConfig's defaults, overridden by flags; each flag's help is its field's."""
    from models import FAMILIES

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in fields(TrainConfig):
        flag, default, help = "--" + field.name.replace("_", "-"), getattr(defaults, field.name), field.metadata["help"]
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"{help} (default: {default})",
                                choices=sorted(FAMILIES) if field.name == "model" else None)
    cfg = TrainConfig(**vars(parser.parse_args(argv)))
    for name in ("epochs", "batch_size", "hidden_size", "num_layers", "log_every"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if cfg.lr <= 0 or not (0 <= cfg.dropout < 1 and 0 <= cfg.letter_dropout < 1):
        parser.error("--lr must be positive, --dropout and --letter-dropout in [0, 1)")
    if min(cfg.max_steps, cfg.threads, cfg.balance_power, cfg.posthoc_adjust) < 0:
        parser.error("--max-steps, --threads, --balance-power and --posthoc-adjust must not be negative")
    if not (0 < cfg.val_fraction < 0.5 and 0 < cfg.test_fraction < 0.5):
        parser.error("--val-fraction and --test-fraction must be between 0 and 0.5")
    return cfg


def main(argv=None) -> dict:
    cfg = parse_args(argv)
    import torch
    from tqdm import tqdm

    from models import build_model, is_counted, model_args
    from utils import checkpoint as ckpt
    from utils.data import Alphabet, SurnameData, make_loader
    from utils.metrics import classification_metrics
    from utils.training import (RunningLog, class_weights, evaluate, make_optimizer, make_scheduler, pick_device,
                                prediction_offset, seed_everything, train_step)

    print("config:", json.dumps(asdict(cfg)))
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    save_dir = Path(cfg.save_dir)

    # --- data: read, normalise, split by name, encode ---
    data = SurnameData.build(cfg.data, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    countries, alphabet = data.countries, Alphabet(ALPHABET)
    train_set = data.dataset("train", alphabet, dedupe=True)  # each distinct (name, country) once
    train_loader = make_loader(train_set, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_loader = make_loader(data.dataset("val", alphabet), 1024, shuffle=False)
    test_loader = make_loader(data.dataset("test", alphabet), 1024, shuffle=False)
    odd = sorted({ch for name in data.names for ch in alphabet.unknown_chars(name)})
    print(f"data: {len(data.names)} names, {len(countries)} countries from {data.path}; split train/val/test "
          f"{len(data.split.train)}/{len(data.split.val)}/{len(data.split.test)} rows, grouped by name"
          + (f"; characters read as unknown: {''.join(odd)}" if odd else ""))

    # --- model, and what its logits need when predicting ---
    args = model_args(cfg.model, cfg, alphabet.size, len(countries))
    model = build_model(cfg.model, asdict(args)).to(device)
    row_labels = torch.tensor([data.labels[r] for r in data.split.train])  # [training rows]
    offset = prediction_offset(train_set.labels, row_labels, len(countries), cfg.posthoc_adjust)  # [n_countries]
    loss_weight = class_weights(train_set.labels, len(countries), cfg.balance_power).to(device)  # [n_countries]
    counted = is_counted(model)
    epochs = 1 if counted else cfg.epochs  # counting needs one pass
    if not counted:
        optimizer = make_optimizer(model, cfg.lr, device)
        total_steps = epochs * len(train_loader)
        scheduler = make_scheduler(optimizer, min(total_steps, cfg.max_steps or total_steps))
    n_params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    print(f"model: {cfg.model}, {n_params:,} {'counts' if counted else 'parameters'}, on {device}")
    base = {"family": cfg.model, "model_args": asdict(args), "alphabet": alphabet.letters, "countries": countries,
            "train_prior": data.class_shares("train").tolist(), "logit_offset": offset.tolist(),
            "temperature": 1.0, "data": data.record(), "config": asdict(cfg)}

    # --- training: every epoch is checked on validation and saved; the best is kept ---
    log = RunningLog(cfg.log_every)
    best, best_accuracy, steps = None, -1.0, 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        log.start_epoch()
        if counted:
            model.fit(train_set.letters, train_set.lengths, train_set.labels)
        else:
            for batch in tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", leave=False):
                loss, correct = train_step(model, batch, optimizer, scheduler, loss_weight, cfg.letter_dropout,
                                           alphabet.unknown_index, device)
                count = len(batch[2])
                log.add(loss.item() * count, correct.item(), count)
                steps += 1
                if steps == cfg.max_steps:
                    break
        y_true, logits, val_loss = evaluate(model, val_loader, offset, device)
        val = classification_metrics(y_true, logits.argmax(dim=1).tolist())
        train_loss, train_accuracy = log.epoch_means()
        record = {"epoch": epoch, "samples": log.seen, "train_loss": train_loss, "train_accuracy": train_accuracy,
                  "val_loss": val_loss, **{f"val_{k}": v for k, v in val.items()},
                  "seconds": time.perf_counter() - start}
        log.history["epochs"].append(record)
        print(f"epoch {epoch:2d}/{epochs}  loss {train_loss:.4f}  train acc {train_accuracy:.3f}  "
              f"val acc {val['accuracy']:.3f}  val bal acc {val['balanced_accuracy']:.3f}  {record['seconds']:.1f}s")
        payload = {**base, "model_state": model.state_dict(), "epoch": epoch, "metrics": record, "finished": False}
        ckpt.save(payload, ckpt.epoch_path(save_dir, cfg.model, epoch))
        if val["accuracy"] > best_accuracy:
            best, best_accuracy = payload, val["accuracy"]
            ckpt.save(best, ckpt.best_path(save_dir, cfg.model))
        if steps == cfg.max_steps:
            print(f"stopped after {steps} steps (--max-steps)")
            break
    train_seconds = time.perf_counter() - start

    # --- the untouched test split, once, with the best-on-validation weights ---
    model.load_state_dict(best["model_state"])
    y_true, logits, _ = evaluate(model, test_loader, offset, device)
    test = classification_metrics(y_true, logits.argmax(dim=1).tolist())
    best = {**best, "metrics": {**best["metrics"], **{f"test_{k}": v for k, v in test.items()}}, "finished": True}
    best_path = ckpt.save(best, ckpt.best_path(save_dir, cfg.model))
    history = {**log.history, "test": {"epoch": best["epoch"], **test}, "seconds": train_seconds,
               "parameters": n_params, "config": asdict(cfg)}
    history_path = save_dir / f"{cfg.model}_history.json"
    history_path.write_text(json.dumps(history, indent=1))

    from utils.plot import plot_history  # matplotlib only here, at the end

    curves_path = plot_history(history, save_dir / f"{cfg.model}_curves.png", title=f"{cfg.model} on {data.path.name}")
    print(f"test ({len(y_true)} names, best epoch {best['epoch']}): accuracy {test['accuracy']:.3f}  "
          f"balanced accuracy {test['balanced_accuracy']:.3f}  macro-F1 {test['macro_f1']:.3f}")
    print(f"saved {best_path}, {history_path}, {curves_path}  ({time.perf_counter() - start:.1f}s)")
    return {"history": history, "best_path": best_path, "history_path": history_path}


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        sys.exit(f"error: {e}")

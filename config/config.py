"""Every default of the project in one place: paths anchored to the repo, data source, hyperparameters."""
import string
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
DEFAULT_DATA = DATA_DIR / "names"  # where the downloaded archive's names/ folder lands
SAVE_DIR = ROOT / "save_model"
DATA_URL = "https://download.pytorch.org/tutorial/data.zip"

# The original project's alphabet; anything else left after transliteration goes to one "unknown" slot.
ALPHABET = string.ascii_letters + " .,;'"
CELLS = ("rnn", "lstm", "gru")


@dataclass
class TrainConfig:
    data: str = str(DEFAULT_DATA)
    model: str = "gru"  # recurrent cell: rnn, lstm or gru
    epochs: int = 20  # with the cosine schedule the best validation epoch comes late (README, "Accuracy targets")
    lr: float = 1e-2  # Adam peak; batch 128 takes a higher rate than batch 32's 3e-3
    batch_size: int = 64  # more accurate than 128 with letter dropout, at ~5 s more (docs/tuning.md, "Third round")
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True  # both ways: higher balanced accuracy than one way (README, "Accuracy targets")
    members: int = 1  # models trained side by side that predict together (README, "Ensembles")
    dropout: float = 0.3  # before the output layer (and between stacked layers): the models overfit
    schedule: str = "cosine"  # learning rate per step: constant or cosine (after a short warm-up)
    dedupe: bool = True  # train on each distinct (name, country) pair once: Arabic repeats 85 names ~18 times
    balance: str = "weighted"  # none, weighted (loss), sampler (balanced batches) or logit-adjust
    balance_power: float = 0.3  # 1: every country counts the same; 0: as often as in the data (README, "Class imbalance")
    prior: str = "rows"  # class mix the predictions assume: every training row's, or the distinct names' (README, "Class imbalance")
    posthoc_adjust: float = 0.0  # after training, a power of the log prior taken off the logits (README, "Class imbalance")
    letter_dropout: float = 0.2  # share of letters hidden (read as "unknown") while training (README, "Class imbalance")
    select: str = "accuracy"  # the validation score that picks the best epoch: accuracy, balanced or mean
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    device: str = "auto"  # cuda, then mps, then cpu
    threads: int = 1  # CPU threads for torch (0: torch's choice); see README, "Speed"
    save_dir: str = str(SAVE_DIR)
    max_steps: int = 0  # stop after this many optimiser steps in total (0: no limit); for smoke tests
    log_every: int = 100  # samples between two points of the loss/accuracy history


@dataclass
class LLMConfig:
    """Asking an OpenAI-compatible chat model instead of the RNN (predict.py --backend llm)."""
    model: str = "gpt-4o-mini"  # any chat model the server knows; it must accept a JSON-schema response_format
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else OpenAI's own API
    shots: int = 0  # labelled training examples shown before the question (0: zero-shot)
    batch_size: int = 10  # names per request; small enough that the model keeps every name apart
    workers: int = 4  # requests in flight at once
    timeout: float = 30.0  # seconds per request attempt
    max_retries: int = 2  # extra attempts after a timeout, a lost connection, HTTP 408/409/429 or 5xx
    temperature: float = 0.0  # most repeatable answers
    cache_dir: str = str(SAVE_DIR / "llm_cache")

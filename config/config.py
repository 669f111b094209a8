"""Every default of the project in one place, each with the help text its command-line flag shows.

Paths are anchored to the repository, so the scripts work from any folder.
"""
import string
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "names.tsv"  # the embedded copy of the tutorial's surname set (data/README.md)
CORPUS = ROOT / "data" / "corpus.tsv"  # real surnames from licence-clean sources (tools/build_corpus.py)
# real surnames no data file holds, for measuring only (never trained on; tools/build_corpus.py leaves them out)
EXTERNAL_VAL = ROOT.parent / "shared" / "data" / "external_val.tsv"
# names --data takes for sets of files: the tutorial's names alone, or with the corpus of real surnames
DATA_PRESETS = {"tutorial": (str(DEFAULT_DATA),), "real": (str(DEFAULT_DATA), str(CORPUS))}
# the settings a preset brings (flags given still win): the corpus has ten times the tutorial's names, so larger
# batches and half the epochs keep its training within minutes (docs/tuning.md)
PRESET_SETTINGS = {"real": {"batch_size": 512, "epochs": 10, "lr": 1e-2}}
SAVE_DIR = ROOT / "save_model"
DATA_URL = "https://download.pytorch.org/tutorial/data.zip"  # the official archive (tools/download_data.py)

# The original project's alphabet; anything else left after transliteration goes to one "unknown" slot.
ALPHABET = string.ascii_letters + " .,;'"
MAX_NAME_LENGTH = 64  # characters after transliteration; the data set's longest name has 20


def option(default, help: str):
    """A config field with the help text of its flag."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    data: tuple = option(("tutorial",), "the training data: names.tsv files (name<TAB>country), folders of "
                                        "<Country>.txt files, or a preset: tutorial (the course's 20k names) or real "
                                        "(those and the corpus of real surnames); several are split file by file")
    model: str = option("ngram+gru", "model family: rnn, lstm, gru (recurrent), ngram (counts), transformer (GPT-style); "
                               "several joined by '+' (gru+ngram) are trained in turn and mixed, with weights fitted "
                               "on validation")
    epochs: int = option(12, "passes over the training split (gradient-trained families)")
    lr: float = option(2e-2, "Adam's peak learning rate, after a linear warm-up over the first 5 percent of steps and before a cosine decay to 0")
    batch_size: int = option(256, "names per optimiser step")
    hidden_size: int = option(128, "rnn/lstm/gru: recurrent state size")
    num_layers: int = option(1, "rnn/lstm/gru: stacked recurrent layers")
    bidirectional: bool = option(True, "rnn/lstm/gru: read names in both directions")
    ngram_order: int = option(4, "ngram: letters per n-gram, the predicted one included (Kneser-Ney smoothed)")
    n_layer: int = option(3, "transformer: attention blocks")
    n_head: int = option(4, "transformer: attention heads per block")
    n_embd: int = option(64, "transformer: width of the letter and position embeddings")
    dropout: float = option(0.3, "dropout before the output layer (and between stacked layers)")
    letter_dropout: float = option(0.2, "share of letters hidden (read as unknown) while training, so no single "
                                        "letter decides")
    feminine_forms: bool = option(True, "also train on the feminine form of each Russian and Czech name "
                                         "(Ivanova, Novakova), which the data set hardly has")
    balance_power: float = option(0.3, "class weights of the loss, (n / (K n_c)) ** power: 1 makes every country "
                                       "weigh the same, 0 turns weighting off")
    posthoc_adjust: float = option(0.5, "after training, move decisions towards equal countries by subtracting this "
                                        "power of the log class prior from the logits (0: off)")
    seed: int = option(0, "seed of the split, the initial weights and the batch order")
    val_fraction: float = option(0.1, "share of distinct names held out for validation")
    test_fraction: float = option(0.1, "share of distinct names held out for the final test")
    device: str = option("auto", "cuda, mps or cpu; auto picks the first available")
    threads: int = option(1, "CPU threads for torch (0: torch's choice); more lose badly when the cores are busy")
    save_dir: str = option(str(SAVE_DIR), "where checkpoints, history and curves go")
    max_steps: int = option(0, "stop after this many optimiser steps (0: no limit); for smoke tests")
    log_every: int = option(100, "training names between two points of the loss/accuracy history")


@dataclass
class LLMConfig:
    """Asking an OpenAI-compatible chat model instead of a trained model (predict.py --backend llm)."""
    model: str = "gpt-4o-mini"  # any chat model the server knows; it must accept a JSON-schema response_format
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else OpenAI's own API
    shots: int = 0  # labelled training examples shown before the question (0: zero-shot)
    batch_size: int = 10  # names per request; small enough that the model keeps every name apart
    workers: int = 4  # requests in flight at once
    timeout: float = 30.0  # seconds per request attempt
    max_retries: int = 2  # extra attempts after a timeout, a lost connection, HTTP 408/409/429 or 5xx
    temperature: float = 0.0  # most repeatable answers
    cache_dir: str = str(SAVE_DIR / "llm_cache")

"""The model families, behind one interface.

Every family is one file here with an args dataclass (plain data, saved in the checkpoint) and an
nn.Module built from it whose `forward(letters [B, T], lengths [B]) -> logits [B, n_countries]`
reads letter indices padded past each name's length. A family trained by gradient descent has
parameters; a family trained by counting has a `fit(letters, lengths, labels)` method and keeps
everything in buffers. Adding a family is a file and an entry in FAMILIES.

Each entry of FAMILIES says how the training config fills the family's args; n_letters and
n_countries always come from the data.
"""
import torch.nn as nn

from models.mix import MixArgs, MixModel
from models.ngram import NgramArgs, NgramModel, case_fold_table
from models.rnn import RNNArgs, RNNClassifier
from models.transformer import CharTransformer, TransformerArgs


def recurrent(cell: str):
    return lambda cfg, letters: {"cell": cell, "hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers,
                                 "bidirectional": cfg.bidirectional, "dropout": cfg.dropout}


# family name -> (args dataclass, the module class (called with the args), the args it takes from the config and
# the alphabet's letters)
FAMILIES = {
    "rnn": (RNNArgs, RNNClassifier, recurrent("rnn")),
    "lstm": (RNNArgs, RNNClassifier, recurrent("lstm")),
    "gru": (RNNArgs, RNNClassifier, recurrent("gru")),
    # exact Bayes over the rows it counts: --posthoc-adjust moves it towards equal countries (utils/class_mix.py)
    "ngram": (NgramArgs, NgramModel, lambda cfg, letters: {"order": cfg.ngram_order, "fold": case_fold_table(letters)}),
    "transformer": (TransformerArgs, CharTransformer, lambda cfg, letters: {
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd, "dropout": cfg.dropout}),
    # trained members combined after training (train.py --model gru+ngram); not trained by itself
    "mix": (MixArgs, lambda args: MixModel(args, build_model), None),
}
TRAINABLE = [family for family, (_, _, from_config) in FAMILIES.items() if from_config]  # what --model takes alone


def model_args(family: str, config, letters: str, n_countries: int):
    """The family's args for an alphabet of `letters` (plus the unknown slot) and `n_countries`."""
    args_class, _, from_config = FAMILIES[family]
    return args_class(n_letters=len(letters) + 1, n_countries=n_countries, **from_config(config, letters))


def build_model(family: str, args: dict) -> nn.Module:
    """The family's module from its saved args (a dict, as the checkpoint stores it)."""
    args_class, model_class, _ = FAMILIES[family]
    return model_class(args_class(**args))


def is_counted(model: nn.Module) -> bool:
    """Whether the model is trained by counting (one pass of `fit`) rather than by gradient steps."""
    return hasattr(model, "fit")

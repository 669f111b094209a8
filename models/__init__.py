"""The model families, behind one interface.

Every family is one file here with an args dataclass (plain data, saved in the checkpoint) and an
nn.Module built from it whose `forward(letters [B, T], lengths [B]) -> logits [B, n_countries]`
reads letter indices padded past each name's length. A family trained by gradient descent has
parameters; a family trained by counting has a `fit(letters, lengths, labels)` method and keeps
everything in buffers. Adding a family is a file and an entry in FAMILIES.

The args fields are filled from the training config by name (hidden_size, dropout, ...), plus
n_letters and n_countries from the data, so sizes always come from the data.
"""
from dataclasses import fields

import torch.nn as nn

from models.rnn import RNNArgs, RNNClassifier

# family name -> (args dataclass, module class, fixed args)
FAMILIES = {
    "rnn": (RNNArgs, RNNClassifier, {"cell": "rnn"}),
    "lstm": (RNNArgs, RNNClassifier, {"cell": "lstm"}),
    "gru": (RNNArgs, RNNClassifier, {"cell": "gru"}),
}


def model_args(family: str, config, n_letters: int, n_countries: int):
    """The family's args: its fixed ones, the data's sizes, and every other field from `config` by name."""
    args_class, _, fixed = FAMILIES[family]
    given = {"n_letters": n_letters, "n_countries": n_countries, **fixed}
    from_config = {f.name: getattr(config, f.name) for f in fields(args_class)
                   if f.name not in given and hasattr(config, f.name)}
    return args_class(**given, **from_config)


def build_model(family: str, args: dict) -> nn.Module:
    """The family's module from its saved args (a dict, as the checkpoint stores it)."""
    args_class, model_class, _ = FAMILIES[family]
    return model_class(args_class(**args))


def is_counted(model: nn.Module) -> bool:
    """Whether the model is trained by counting (one pass of `fit`) rather than by gradient steps."""
    return hasattr(model, "fit")

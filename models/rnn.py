"""The recurrent families (rnn, lstm, gru): one recurrent layer over one-hot letters and a Linear to the countries."""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from models import fast_rnn

RECURRENT_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class RNNArgs:
    cell: str  # rnn, lstm or gru
    n_letters: int  # one-hot width: the alphabet plus the unknown slot
    n_countries: int
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0


class RNNClassifier(nn.Module):
    def __init__(self, args: RNNArgs):
        super().__init__()
        if args.cell not in RECURRENT_LAYERS:
            raise ValueError(f"unknown cell {args.cell!r}; choose one of {sorted(RECURRENT_LAYERS)}")
        self.args = args
        self.directions = 2 if args.bidirectional else 1
        self.rnn = RECURRENT_LAYERS[args.cell](
            args.n_letters, args.hidden_size, args.num_layers, batch_first=True,
            bidirectional=args.bidirectional, dropout=args.dropout if args.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(args.dropout)
        self.head = nn.Linear(args.hidden_size * self.directions, args.n_countries)

    def forward(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_countries] for letter indices [B, T] (or their one-hot [B, T, n_letters]).

        `lengths` [B] gives each name's length; positions past it are padding and are never read.
        """
        lengths = lengths.cpu()
        same_length = bool((lengths == lengths[0]).all())  # a bucketed batch or a single name: no padding
        if same_length and fast_rnn.can_run(self.rnn, letters):
            last = fast_rnn.last_states(self.rnn, letters[:, : int(lengths[0])])  # [B, directions * H]
            return self._logits(last)
        if fast_rnn.can_run_gru(self.rnn, letters):  # inference only, names of any lengths together
            if self.training and self.dropout.p > 0:
                return self._logits(fast_rnn.gru_last_states(self.rnn, letters, lengths))
            return fast_rnn.gru_last_states(self.rnn, letters, lengths, head=self.head)  # the same, in less memory
        if letters.dtype == torch.long:
            letters = F.one_hot(letters, self.args.n_letters).to(self.head.weight.dtype)  # [B, T, n_letters]
        if same_length:
            _, hidden = self.rnn(letters[:, : int(lengths[0])])
        else:
            _, hidden = self.rnn(pack_padded_sequence(letters, lengths, batch_first=True, enforce_sorted=False))
        if isinstance(hidden, tuple):  # the LSTM's (h, c)
            hidden = hidden[0]
        # hidden: [num_layers * directions, B, H]; the top layer's last state in each direction
        last = torch.cat(list(hidden[-self.directions:]), dim=1)  # [B, directions * H]
        return self._logits(last)

    @property
    def reads_any_length(self) -> bool:
        """Whether inference on names of mixed lengths costs no more than on one length (the GRU's inference path):
        models.predictor then needs no length buckets."""
        return fast_rnn.GRU_INFERENCE and self.args.cell == "gru" and self.args.num_layers == 1 \
            and self.head.weight.device.type == "cpu"

    def _logits(self, last: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(last))  # [B, n_countries]

"""A small GPT-style character model for surnames (as in karpathy's nanoGPT / makemore): token and
position embeddings, pre-LayerNorm causal self-attention blocks, a final LayerNorm and a Linear to the
countries, read from the last real letter of each name or from the mean over its letters."""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

POOLS = ("last", "mean")


@dataclass
class TransformerArgs:
    n_letters: int  # alphabet size including the unknown slot (index n_letters - 1)
    n_countries: int
    block_size: int = 32  # positions read; a longer name is read by its last block_size letters
    # sizes chosen on the validation split (docs/tuning.md)
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.1  # on the embeddings, the attention weights and each residual branch
    pool: str = "last"  # the head reads the last real position ("last") or the mean over the real positions ("mean")


class CausalSelfAttention(nn.Module):
    def __init__(self, args: TransformerArgs):
        super().__init__()
        self.n_head, self.dropout = args.n_head, args.dropout
        self.c_attn = nn.Linear(args.n_embd, 3 * args.n_embd)  # query, key, value for all heads in one matmul
        self.c_proj = nn.Linear(args.n_embd, args.n_embd)
        self.resid_dropout = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x [B, T, C]
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # [B, nh, T, hs]
        # causal: position t attends to positions <= t only. Names are padded on the right, so the causal
        # mask alone keeps padding out of every real position: a real position never sees a later one.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)  # [B, nh, T, hs]
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # [B, T, C]
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, args: TransformerArgs):
        super().__init__()
        self.c_fc = nn.Linear(args.n_embd, 4 * args.n_embd)
        self.c_proj = nn.Linear(4 * args.n_embd, args.n_embd)
        self.dropout = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))  # [B, T, C]


class Block(nn.Module):
    """GPT-2's pre-LayerNorm block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, args: TransformerArgs):
        super().__init__()
        self.ln_1 = nn.LayerNorm(args.n_embd)
        self.attn = CausalSelfAttention(args)
        self.ln_2 = nn.LayerNorm(args.n_embd)
        self.mlp = MLP(args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))  # [B, T, C]


class CharTransformer(nn.Module):
    def __init__(self, args: TransformerArgs):
        super().__init__()
        if args.pool not in POOLS:
            raise ValueError(f"unknown pool {args.pool!r}; choose one of {POOLS}")
        if args.n_embd % args.n_head:
            raise ValueError(f"n_embd {args.n_embd} is not a multiple of n_head {args.n_head}")
        if args.block_size < 1:
            raise ValueError("block_size must be at least 1")
        self.args = args
        self.wte = nn.Embedding(args.n_letters, args.n_embd)
        self.wpe = nn.Embedding(args.block_size, args.n_embd)
        self.drop = nn.Dropout(args.dropout)
        self.blocks = nn.ModuleList(Block(args) for _ in range(args.n_layer))
        self.ln_f = nn.LayerNorm(args.n_embd)
        self.head = nn.Linear(args.n_embd, args.n_countries)
        # GPT-2's initialisation (nanoGPT): N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * args.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def window(self, letters: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The letters the model reads: (letters [B, min(T, block_size)], lengths [B], each at most block_size).

        A name longer than block_size is read by its last block_size letters (the endings -ov, -ski,
        -ez carry most of the signal), shifted to the start of the row; shorter names are unchanged.
        """
        B, T = letters.shape
        lengths = lengths.to(letters.device)
        if T <= self.args.block_size:
            return letters, lengths
        start = (lengths - self.args.block_size).clamp(min=0)  # [B]
        cols = start[:, None] + torch.arange(self.args.block_size, device=letters.device)  # [B, block_size]
        return letters.gather(1, cols.clamp(max=T - 1)), lengths.clamp(max=self.args.block_size)

    def hidden_states(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-position outputs of the final LayerNorm, [B, T', n_embd] for the letters window() keeps;
        position t depends on letters 0..t of the window only. Rows past a name's length are padding."""
        assert letters.dtype == torch.long and letters.dim() == 2, "letters: LongTensor [B, T]"
        letters, _ = self.window(letters, lengths)
        T = letters.shape[1]
        pos = torch.arange(T, device=letters.device)  # [T]
        x = self.drop(self.wte(letters) + self.wpe(pos))  # [B, T, C]
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)  # [B, T, C]

    def forward(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_countries] for letter indices [B, T], zero-padded past each name's `lengths` [B]."""
        h = self.hidden_states(letters, lengths)  # [B, T', C]
        _, lengths = self.window(letters, lengths)  # [B], at most block_size
        if self.args.pool == "last":
            pooled = h[torch.arange(h.shape[0], device=h.device), lengths - 1]  # [B, C]
        else:
            real = (torch.arange(h.shape[1], device=h.device) < lengths[:, None]).to(h.dtype)  # [B, T']
            pooled = (h * real[..., None]).sum(1) / lengths[:, None].to(h.dtype)  # [B, C]
        return self.head(pooled)  # [B, n_countries]

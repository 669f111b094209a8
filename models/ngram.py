"""Character n-gram language models, one per country, that classify a name by Bayes' rule.

A name is read as  BOS^(order-1) c_1 ... c_L EOS  and scored per country c as
    log P(name | c) = sum_i log P(s_i | previous order-1 symbols, c)   (the letters, then EOS),
from counts of the training names smoothed in one of three ways (`NgramArgs.smoothing`):
    "add-k"          (count(h w) + k) / (count(h) + k |W|), the full-order counts only;
    "witten-bell"    (count(h w) + T(h) P(w | h')) / (count(h) + T(h)), T(h) = distinct w after h;
    "kneser-ney"     interpolated: max(a(h w) - D, 0) / A(h) + D T(h) / A(h) P(w | h'), where a is the
                     count at the full order and the continuation count (distinct left neighbours) below
                     it (the raw count for an n-gram that starts with BOS, which has one left neighbour);
with h' the context shortened by its oldest symbol, the uniform 1/|W| under the unigram, and W the
symbols a name can continue with: the letters (after case folding) and EOS.

The logits are  scale * log P(name | c) + prior_power * log prior(c),  prior(c) the share of the rows
`fit` saw; with scale = prior_power = 1 their softmax is the Bayes posterior.

Storage: per order m, every (country, m-gram) seen in training is one int64 key in a sorted buffer,
found with torch.searchsorted; contexts likewise. The buffers are empty on a freshly built model and
`fit` gives them their sizes, so `_load_from_state_dict` resizes them to the sizes in the state dict
before copying: a fresh `NgramModel(args)` loads any fitted state dict of the same args.
"""
from dataclasses import dataclass, field

import torch
import torch.nn as nn

SMOOTHINGS = ("add-k", "witten-bell", "kneser-ney")
CHUNK = 512  # names per step of log_likelihood


@dataclass
class NgramArgs:
    n_letters: int  # alphabet size including the unknown slot (index n_letters - 1)
    n_countries: int
    order: int = 4  # symbols per n-gram: the predicted one and order-1 of context
    smoothing: str = "kneser-ney"  # add-k, witten-bell or kneser-ney
    k: float = 0.05  # add-k's pseudo-count
    discount: float = 0.8  # Kneser-Ney's absolute discount D, 0 < D <= 1
    # letter index -> the index it is read as; [] keeps case. Pass case_fold_table(alphabet letters): on validation
    # folding is about even on the grouped split and a little better on real-world spellings
    fold: list[int] = field(default_factory=list)
    prior_power: float = 0.5  # p in  p * log prior(c); 0: uniform prior, 1: the training rows' prior (exact Bayes)
    scale: float = 1.0  # multiplies log P(name | c) before the prior is added (argmax depends on prior_power / scale only)


def case_fold_table(letters: str) -> list[int]:
    """NgramArgs.fold for an alphabet: each letter's index -> its lower case's index (if in the alphabet).

    One entry per letter plus the unknown slot, which stays itself."""
    index = {letter: i for i, letter in enumerate(letters)}
    return [index.get(letter.lower(), i) for i, letter in enumerate(letters)] + [len(letters)]


_BUFFERS = [("gram_keys", torch.long), ("gram_counts", torch.float64), ("gram_cont", torch.float64),
            ("ctx_keys", torch.long), ("ctx_counts", torch.float64), ("ctx_cont", torch.float64),
            ("ctx_types", torch.float64)]


class NgramModel(nn.Module):
    def __init__(self, args: NgramArgs):
        super().__init__()
        if args.smoothing not in SMOOTHINGS:
            raise ValueError(f"unknown smoothing {args.smoothing!r}; choose one of {SMOOTHINGS}")
        if args.order < 1:
            raise ValueError("order must be at least 1")
        if args.smoothing == "kneser-ney" and not 0 < args.discount <= 1:
            raise ValueError("the Kneser-Ney discount must be in (0, 1]")
        self.args = args
        self.bos, self.eos = args.n_letters, args.n_letters + 1  # symbols after the letters
        self.base = args.n_letters + 2  # radix of the n-gram keys
        if self.base ** args.order * args.n_countries >= 2 ** 63:
            raise ValueError(f"order {args.order} is too high for int64 n-gram keys")
        fold = args.fold or list(range(args.n_letters))
        if len(fold) != args.n_letters:
            raise ValueError(f"fold has {len(fold)} entries, the alphabet {args.n_letters}")
        self.register_buffer("fold", torch.tensor(fold, dtype=torch.long), persistent=False)  # [n_letters]
        self.n_outcomes = len(set(fold)) + 1  # |W|: the letters as folded, and EOS
        # per order m = 1..order: keys (sorted) and statistics of the (country, m-gram)s and (country, context)s
        for m in range(1, args.order + 1):
            for name, dtype in _BUFFERS:
                self.register_buffer(f"{name}_{m}", torch.zeros(0, dtype=dtype))
        self.register_buffer("log_prior", torch.zeros(args.n_countries))  # [n_countries]

    # ---- keys -------------------------------------------------------------------------------------
    def _key(self, symbols: torch.Tensor) -> torch.Tensor:
        """[..., m] symbols -> [...] int64 key of the m-gram (0 for m = 0)."""
        powers = self.base ** torch.arange(symbols.shape[-1] - 1, -1, -1, device=symbols.device)
        return (symbols * powers).sum(-1)

    def _symbols(self, letters: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """letters [B, T] -> (windows [B, T+1, order] of the context and the predicted symbol, mask [B, T+1])."""
        n = self.args.order
        batch, width = letters.shape
        steps = torch.arange(width + 1, device=letters.device)  # [T+1]
        folded = self.fold[letters.clamp(0, self.args.n_letters - 1)]  # [B, T]
        body = torch.cat([folded, folded.new_zeros(batch, 1)], 1)  # [B, T+1]
        body = torch.where(steps < lengths[:, None], body, self.eos)  # EOS at position length, and after
        stream = torch.cat([body.new_full((batch, n - 1), self.bos), body], 1)  # [B, n-1+T+1]
        return stream.unfold(1, n, 1), steps <= lengths[:, None]

    # ---- fitting ----------------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, letters: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> None:
        """Count the n-grams of the names letters [N, T] (zero past lengths [N]) of countries labels [N]."""
        n, countries = self.args.order, self.args.n_countries
        windows, mask = self._symbols(letters, lengths)  # [N, T+1, n], [N, T+1]
        grams = windows[mask]  # [G, n] every n-gram occurrence
        label_of = labels[:, None].expand(mask.shape)[mask]  # [G]
        lower_cont = None  # continuation counts for order m, from the distinct (m+1)-grams
        for m in range(n, 0, -1):
            key = self._key(grams[:, n - m:]) * countries + label_of  # [G] (m-gram, country)
            keys, counts = torch.unique(key, return_counts=True)  # sorted
            counts = counts.double()
            if m == n:
                cont = counts
            else:
                cont = torch.zeros_like(counts)
                cont.index_add_(0, torch.searchsorted(keys, lower_cont), torch.ones(len(lower_cont), dtype=torch.float64))
                first = (keys // countries) // self.base ** (m - 1)  # the m-gram's oldest symbol
                cont = torch.where(first == self.bos, counts, cont)  # no left neighbour but BOS: the raw count
            # the (m+1)-grams' suffixes for the next order down: one per distinct (m-gram, country)
            gram, country = keys // countries, keys % countries
            lower_cont = (gram % self.base ** (m - 1)) * countries + country if m > 1 else None
            ctx = (gram // self.base) * countries + country  # (context, country)
            ctx_keys, ctx_index = torch.unique(ctx, return_inverse=True)
            ctx_counts = torch.zeros(len(ctx_keys), dtype=torch.float64).index_add_(0, ctx_index, counts)
            ctx_cont = torch.zeros(len(ctx_keys), dtype=torch.float64).index_add_(0, ctx_index, cont)
            ctx_types = torch.zeros(len(ctx_keys), dtype=torch.float64).index_add_(0, ctx_index, torch.ones_like(counts))
            for name, value in zip(("gram_keys", "gram_counts", "gram_cont", "ctx_keys", "ctx_counts", "ctx_cont", "ctx_types"),
                                   (keys, counts, cont, ctx_keys, ctx_counts, ctx_cont, ctx_types)):
                setattr(self, f"{name}_{m}", value.to(getattr(self, f"{name}_{m}").device))
        rows = torch.bincount(labels, minlength=countries).double()
        self.log_prior = (rows / rows.sum()).log().float().to(self.log_prior.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the count buffers take the sizes of the fitted model being loaded
        for m in range(1, self.args.order + 1):
            for name, _ in _BUFFERS:
                key = f"{prefix}{name}_{m}"
                if key in state_dict:
                    setattr(self, f"{name}_{m}", torch.empty_like(state_dict[key], device=self.log_prior.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---- probabilities ----------------------------------------------------------------------------
    @staticmethod
    def _find(table: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(index, found) of each query key (any shape) in the sorted table: values[index] is valid where found."""
        if len(table) == 0:
            return torch.zeros_like(query), torch.zeros(query.shape, dtype=torch.bool, device=query.device)
        at = torch.searchsorted(table, query).clamp(max=len(table) - 1)
        return at, table[at] == query

    def _probs(self, windows: torch.Tensor) -> torch.Tensor:
        """windows [..., order] (context then predicted symbol) -> P(symbol | context, c) [..., n_countries]."""
        a, n, countries = self.args, self.args.order, self.args.n_countries
        country = torch.arange(countries, device=windows.device)
        prob = torch.full(windows.shape[:-1] + (countries,), 1.0 / self.n_outcomes, dtype=torch.float64,
                          device=windows.device)  # order 0: uniform over W
        orders = [n] if a.smoothing == "add-k" else range(1, n + 1)
        for m in orders:
            buffer = lambda name: getattr(self, f"{name}_{m}")
            gram_at, gram_found = self._find(buffer("gram_keys"), self._key(windows[..., n - m:])[..., None] * countries + country)
            ctx_at, ctx_found = self._find(buffer("ctx_keys"), self._key(windows[..., n - m:-1])[..., None] * countries + country)
            # Kneser-Ney below the full order reads continuation counts; everything else raw counts
            cont = a.smoothing == "kneser-ney" and m < n
            count = torch.where(gram_found, buffer("gram_cont" if cont else "gram_counts")[gram_at], 0.0)  # [..., C]
            total = torch.where(ctx_found, buffer("ctx_cont" if cont else "ctx_counts")[ctx_at], 0.0)
            if a.smoothing == "add-k":
                prob = (count + a.k) / (total + a.k * self.n_outcomes)
                continue
            types = torch.where(ctx_found, buffer("ctx_types")[ctx_at], 0.0)
            if a.smoothing == "witten-bell":
                mixed = (count + types * prob) / (total + types).clamp(min=1e-300)
            else:
                safe = total.clamp(min=1e-300)
                mixed = (count - a.discount).clamp(min=0) / safe + a.discount * types / safe * prob
            prob = torch.where(total > 0, mixed, prob)  # an unseen context: the shorter one's estimate
        return prob

    def char_log_probs(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """log P(s_t | context, c) [B, n_countries, T+1] float64 for the letters and EOS; 0 past EOS."""
        windows, mask = self._symbols(letters, lengths)  # [B, T+1, n], [B, T+1]
        log_probs = self._probs(windows).log()  # [B, T+1, C]
        return torch.where(mask[..., None], log_probs, 0.0).transpose(1, 2)

    def next_symbol_probs(self, prefix: torch.Tensor) -> torch.Tensor:
        """P(next symbol | a name starting with the letters prefix [L], c): [n_countries, n_letters + 1],
        the last column EOS; a letter that case folding reads as another has 0 (its mass is the other's)."""
        n, size = self.args.order, self.args.n_letters
        context = torch.cat([prefix.new_full((n - 1,), self.bos), self.fold[prefix]])[-(n - 1):] if n > 1 \
            else prefix.new_zeros(0)
        outcomes = torch.cat([torch.arange(size, device=prefix.device), prefix.new_tensor([self.eos])])  # [n_letters+1]
        windows = torch.cat([context.expand(len(outcomes), n - 1), outcomes[:, None]], 1)  # [n_letters+1, n]
        probs = self._probs(windows)  # [n_letters+1, C]
        kept = torch.cat([self.fold == torch.arange(size, device=prefix.device), prefix.new_ones(1, dtype=torch.bool)])
        return torch.where(kept[:, None], probs, 0.0).T

    def log_likelihood(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """log P(name | c) [B, n_countries] float64, computed CHUNK names at a time (each cut to its longest
        name) so the [B, T+1, n_countries] intermediates stay in cache for a big batch."""
        out = []
        for chunk, chunk_lengths in zip(letters.split(CHUNK), lengths.split(CHUNK)):
            width = int(chunk_lengths.max()) if len(chunk_lengths) else 0
            out.append(self.char_log_probs(chunk[:, :width], chunk_lengths).sum(-1))
        return torch.cat(out) if out else letters.new_zeros(0, self.args.n_countries, dtype=torch.float64)

    def forward(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_countries]: scale * log P(name | c) + prior_power * log prior(c), for letter
        indices letters [B, T] (positions at or past lengths [B] are never read)."""
        logits = self.args.scale * self.log_likelihood(letters, lengths.to(letters.device)).float()
        if self.args.prior_power != 0:
            logits = logits + self.args.prior_power * self.log_prior
        return logits

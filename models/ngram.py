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

Scoring: `char_log_probs`, `next_symbol_probs` and `_reference_log_likelihood` read the buffers directly
(`_probs`, every query expanded over the countries). `forward` and `log_likelihood` read tables derived
from them on first use, not saved (see `_build_tables`): per position one lookup of the longest context
any country saw and two rows of n_countries (~50x faster at order 4) and equal to the reference to ~1e-8.
"""
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

SMOOTHINGS = ("add-k", "witten-bell", "kneser-ney")
CHUNK = 4096  # names per step of log_likelihood: fewer steps, less per-step overhead (docs/speed.md: 512 was slower)
DIRECT = 2 ** 20  # most entries of the dense lookup of contexts of the fast path
FIXED = 2.0 ** 10  # the fast path's table rows are split into a multiple of 1/FIXED and a remainder


@dataclass
class NgramArgs:
    n_letters: int  # alphabet size including the unknown slot (index n_letters - 1)
    n_countries: int
    order: int = 4  # symbols per n-gram: the predicted one and order-1 of context
    smoothing: str = "kneser-ney"  # add-k, witten-bell or kneser-ney
    k: float = 0.05  # add-k's pseudo-count
    discount: float = 0.8  # Kneser-Ney's absolute discount D, 0 < D <= 1
    # letter index -> the index it is read as; [] keeps case; case_fold_table(alphabet letters) folds it
    fold: list[int] = field(default_factory=list)
    prior_power: float = 1.0  # p in  p * log prior(c); 1: the training rows' prior (exact Bayes), 0: uniform
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
    reads_any_length = True  # names of mixed lengths cost what they would in one-length batches (models.predictor)

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
        self._fast = None  # the derived tables of the fast path, built on first use (not in the state dict)

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
        self._fast = None  # the derived tables follow the new counts
        rows = torch.bincount(labels, minlength=countries).double()
        self.log_prior = (rows / rows.sum()).log().float().to(self.log_prior.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the count buffers take the sizes of the fitted model being loaded
        self._fast = None
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
        at = torch.searchsorted(table, query).clamp_(max=len(table) - 1)
        return at, table.take(at) == query

    def _orders(self) -> list[int]:
        """The orders whose counts the smoothing reads, lowest first (add-k: the full order only)."""
        n = self.args.order
        return [n] if self.args.smoothing == "add-k" else list(range(1, n + 1))

    def _reads_cont(self, m: int) -> bool:
        """Kneser-Ney below the full order reads continuation counts; everything else raw counts."""
        return self.args.smoothing == "kneser-ney" and m < self.args.order

    def _count(self, m: int, query: torch.Tensor) -> torch.Tensor:
        """The count order m's smoothing reads for (m-gram, country) keys (any shape), 0 where unseen."""
        at, found = self._find(getattr(self, f"gram_keys_{m}"), query)
        return torch.where(found, getattr(self, f"gram_{'cont' if self._reads_cont(m) else 'counts'}_{m}")[at], 0.0)

    def _context(self, m: int, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total, distinct followers) of (context, country) keys (any shape) at order m, 0 where unseen."""
        at, found = self._find(getattr(self, f"ctx_keys_{m}"), query)
        total = torch.where(found, getattr(self, f"ctx_{'cont' if self._reads_cont(m) else 'counts'}_{m}")[at], 0.0)
        return total, torch.where(found, getattr(self, f"ctx_types_{m}")[at], 0.0)

    def _mix(self, count: torch.Tensor, total: torch.Tensor, types: torch.Tensor, lower) -> torch.Tensor:
        """P(w | h, c) from count(h w), total(h), T(h) and P(w | h', c) = lower; lower itself where h is unseen."""
        a = self.args
        if a.smoothing == "add-k":
            mixed = (count + a.k) / (total + a.k * self.n_outcomes)
        elif a.smoothing == "witten-bell":
            mixed = (count + types * lower) / (total + types).clamp(min=1e-300)
        else:
            safe = total.clamp(min=1e-300)
            mixed = (count - a.discount).clamp(min=0) / safe + a.discount * types / safe * lower
        return torch.where(total > 0, mixed, lower)  # an unseen context: the shorter one's estimate

    def _probs(self, windows: torch.Tensor) -> torch.Tensor:
        """windows [..., order] (context then predicted symbol) -> P(symbol | context, c) [..., n_countries]:
        the reference computation, each query expanded over the countries."""
        n, countries = self.args.order, self.args.n_countries
        country = torch.arange(countries, device=windows.device)
        prob = torch.full(windows.shape[:-1] + (countries,), 1.0 / self.n_outcomes, dtype=torch.float64,
                          device=windows.device)  # order 0: uniform over W
        for m in self._orders():
            gram = self._key(windows[..., n - m:])[..., None]  # [..., 1]
            total, types = self._context(m, gram // self.base * countries + country)
            prob = self._mix(self._count(m, gram * countries + country), total, types, prob)
        return prob

    # ---- the fast path: tables per context, derived from the counts on first use ----------------------
    # For a context h seen by any country at order m, and a country c,
    #     P(w | h, c) = gamma(h, c) P(w | h', c)   whenever c never saw h w
    # (gamma = 1 where c never saw h), so with Lambda(h, c) = the sum of log gamma over h and its suffixes,
    #     log P(w | h_k, c) = [log P(w | h_j, c) - Lambda(h_j, c)] + Lambda(h_k, c),
    # h_k the longest context of the position seen by any country, h_j w the longest m-gram ending in w seen by
    # any country (j <= k, h_j a suffix of h_k). So a position costs: the row of h_k (a lookup in a dense
    # table for the short orders, a searchsorted per longer order; no country expansion), the row of h_j w
    # in h_k's `next`, and two rows of n_countries summed per name (one embedding_bag).
    def _tables(self) -> dict:
        """The fast path's tables, built on first use after `fit` or a load (and again if moved or re-argued)."""
        a = self.args
        stamp = (self.log_prior.device, a.smoothing, a.k, a.discount)
        if self._fast is None or self._fast["stamp"] != stamp:
            with torch.no_grad():
                self._fast = {"stamp": stamp, **self._build_tables()}
        return self._fast

    def _build_tables(self) -> dict:
        """The fast path's tables:
            rows    [Q + R, 2C] log P(w | h_j) - Lambda(h_j) of the Q m-grams seen by any country (row 0: order 0's
                                uniform 1/|W|), then Lambda(h) of the R contexts seen by any country (row Q: order 0's
                                empty context, 0); computed in float64 and kept as two float32 columns each: its
                                multiple of 1/FIXED and the rest, so that `embedding_bag` sums them at float32
                                speed to ~1e-8 (float32 alone would be ~1e-5 off)
            next    [R, |W|]    each context's m-gram row for each symbol w (column `column[w]`)
            direct  [base^(d-1)] the context row of every possible context of order d (<= DIRECT entries)
            searched            per order above d: (m, its contexts sorted, the row of the first)."""
        countries, device = self.args.n_countries, self.log_prior.device
        country = torch.arange(countries, device=device)
        outcomes = sorted(set(self.fold.tolist())) + [self.eos]  # W, one column each
        column = torch.zeros(self.base, dtype=torch.long, device=device)
        column[torch.tensor(outcomes, device=device)] = torch.arange(len(outcomes), device=device)
        uniform = 1.0 / self.n_outcomes
        val = [torch.full((1, countries), uniform, dtype=torch.float64, device=device).log()]  # per order: [G, C]
        lam = [torch.zeros(1, countries, dtype=torch.float64, device=device)]  # [K, C]
        nxt = [torch.zeros(1, len(outcomes), dtype=torch.long, device=device)]  # [K, |W|]
        levels = []  # per order: (m, contexts [K] sorted, row of the first)
        grams_so_far, rows_so_far = 1, 1
        below = None  # the order below: (contexts, their Lambda, m-grams, their probabilities)
        for m in self._orders():
            ctx = torch.unique(getattr(self, f"ctx_keys_{m}") // countries)  # [K]
            gram = torch.unique(getattr(self, f"gram_keys_{m}") // countries)  # [G]
            total, types = self._context(m, ctx[:, None] * countries + country)  # [K, C]
            gram_ctx, found = self._find(ctx, gram // self.base)  # [G] each m-gram's context
            assert bool(found.all()), "an m-gram's context is unseen"
            if below is None:  # order 0 below: the uniform, one empty context
                lower = torch.full((len(gram), countries), uniform, dtype=torch.float64, device=device)
                ctx_lam, ctx_next = 0.0, nxt[0].expand(len(ctx), -1)
            else:
                parent, found = self._find(below[0], ctx % self.base ** (m - 2))  # [K] each context's suffix
                suffix, found_too = self._find(below[2], gram % self.base ** (m - 1))  # [G] each m-gram's suffix
                assert bool(found.all() and found_too.all()), "a suffix is unseen at the order below"
                lower, ctx_lam, ctx_next = below[3][suffix], below[1][parent], nxt[-1][parent]
            # as `_probs` computes it, order by order: P(w | h, c); and gamma(h, c) = P(w | h, c) / P(w | h', c)
            # for a w that c never saw after h
            prob = self._mix(self._count(m, gram[:, None] * countries + country), total[gram_ctx], types[gram_ctx], lower)
            gamma = self._mix(torch.zeros_like(total), total, types, torch.full_like(total, uniform)) / uniform
            ctx_lam = gamma.log() + ctx_lam
            ctx_next = ctx_next.clone()
            ctx_next[gram_ctx, column[gram % self.base]] = grams_so_far + torch.arange(len(gram), device=device)
            val.append(prob.log() - ctx_lam[gram_ctx])
            lam.append(ctx_lam)
            nxt.append(ctx_next)
            levels.append((m, ctx, rows_so_far))
            below = (ctx, ctx_lam, gram, prob)
            grams_so_far, rows_so_far = grams_so_far + len(gram), rows_so_far + len(ctx)
        # the short orders by a dense lookup of the whole context of order d, the longer ones by searchsorted
        d = max([0] + [m for m, _, _ in levels if self.base ** (m - 1) <= DIRECT])
        direct = torch.zeros(self.base ** max(d - 1, 0), dtype=torch.long, device=device)
        every = torch.arange(len(direct), device=device)
        for m, ctx, first in levels:
            if m <= d:
                at, found = self._find(ctx, every % self.base ** (m - 1))
                direct = torch.where(found, first + at, direct)
        rows = torch.cat(val + lam)
        high = (rows * FIXED).round() / FIXED  # on a grid of 1/FIXED: float32 sums of them are exact (see below)
        return {"rows": torch.cat([high, rows - high], 1).float(), "largest": float(high.abs().max()),
                "n_grams": grams_so_far, "next": torch.cat(nxt), "column": column,
                "direct_order": d, "direct": direct, "searched": [level for level in levels if level[0] > d]}

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
        """log P(name | c) [B, n_countries] float64 by the derived tables (see `_tables`), CHUNK names at a time;
        equal to `_reference_log_likelihood` up to rounding."""
        t, n, countries = self._tables(), self.args.order, self.args.n_countries
        d, columns = t["direct_order"], t["next"].shape[1]
        out = []
        for chunk, chunk_lengths in zip(letters.split(CHUNK), lengths.split(CHUNK)):
            width = int(chunk_lengths.max()) if len(chunk_lengths) else 0
            windows, mask = self._symbols(chunk[:, :width], chunk_lengths)  # [b, T+1, n], [b, T+1]
            windows = windows.reshape(-1, n).index_select(0, mask.view(-1).nonzero().squeeze(1))  # [P, n] letters, EOS
            row = t["direct"].take(self._key(windows[:, n - d:-1]) if d > 1 else windows.new_zeros(len(windows)))
            for m, ctx, first in t["searched"]:  # an unseen context keeps the shorter one's row
                at, found = self._find(ctx, self._key(windows[:, n - m:-1]))
                row = torch.where(found, first + at, row)
            gram = t["next"].view(-1).take(row * columns + t["column"].take(windows[:, -1]))  # [P]
            index = torch.stack([gram, t["n_grams"] + row], 1).view(-1)  # [2P] per position: m-gram, context
            steps = 2 * (chunk_lengths + 1)  # [b] the indices of each name
            offsets = steps.cumsum(0) - steps
            # the high parts are multiples of 1/FIXED, so float32 adds them exactly while every partial sum is
            # below 2^24 / FIXED; the low parts are below 1/(2 FIXED), their float32 rounding negligible
            if 2 * (width + 1) * t["largest"] < 2 ** 24 / FIXED:
                parts = F.embedding_bag(index, t["rows"], offsets, mode="sum").double()  # [b, 2C]
            else:  # names too long for exact sums (not with real names): float64, slower
                parts = F.embedding_bag(index, t["rows"].double(), offsets, mode="sum")
            out.append(parts[:, :countries] + parts[:, countries:])  # [b, C]
        return torch.cat(out) if out else letters.new_zeros(0, countries, dtype=torch.float64)

    def _reference_log_likelihood(self, letters: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """log P(name | c) [B, n_countries] float64 by the reference `_probs` (each query expanded over the
        countries), CHUNK names at a time, each chunk cut to its longest name: what the tests hold
        `log_likelihood` to."""
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

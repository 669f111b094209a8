"""A faster CPU path for the plain (tanh) RNN over letter indices: the same function as nn.RNN.

nn.RNN on a CPU records every time step as several autograd nodes and, in the backward pass, adds a
small weight-gradient product per step. For names of a few letters at hidden 128 that bookkeeping
costs about as much as the arithmetic. Here the recurrence is one autograd node whose backward pass
runs the steps by hand and forms the recurrent weight's gradient in one matrix product over all
steps. The input side needs no one-hot matrix: one-hot × W_ih is a row lookup, so the letters pick
rows of W_ih (with both biases folded in).

models/rnn.py uses it for one-layer RNNs on batches of equal-length names (what the length-bucketed
loader yields); tests/test_models.py checks logits and gradients against nn.RNN.
"""
import torch
import torch.nn as nn

from models import native


class TanhRecurrence(torch.autograd.Function):
    """h_t = tanh(rows[letters_t] + h_{t-1} @ W_hh^T) from h_0 = 0; returns the last state h_T.

    `rows` [n_letters, H] holds W_ih^T plus both biases, so `rows[letter]` is W_ih @ one_hot(letter) + b.
    tanh is computed as 2·sigmoid(2x) - 1 (within 2e-7 of torch.tanh): torch's CPU tanh kernel takes
    five times as long as its sigmoid here, as long as the step's matrix product.
    """

    @staticmethod
    def forward(ctx, letters: torch.Tensor, rows: torch.Tensor, weight_hh: torch.Tensor) -> torch.Tensor:
        # letters: [T, B] indices, rows: [n_letters, H], weight_hh: [H, H]
        steps, batch = letters.shape
        flat_letters = letters.reshape(-1)  # [T * B]
        inputs = rows.contiguous().index_select(0, flat_letters).view(steps, batch, -1)  # [T, B, H]
        states = inputs.new_empty(steps + 1, batch, rows.shape[1])  # [T + 1, B, H]
        states[0].zero_()  # h_0
        for t in range(steps):
            state = states[t + 1]
            torch.addmm(inputs[t], states[t], weight_hh.t(), beta=2, alpha=2, out=state)  # 2x
            state.sigmoid_().mul_(2).sub_(1)  # tanh(x)
        ctx.save_for_backward(flat_letters, states, weight_hh)
        ctx.n_letters = rows.shape[0]
        return states[steps].clone()  # [B, H]

    @staticmethod
    def backward(ctx, grad_last: torch.Tensor):
        flat_letters, states, weight_hh = ctx.saved_tensors
        steps = states.shape[0] - 1
        grad_pre = torch.empty_like(states[1:])  # [T, B, H]: the loss's gradient before each tanh
        square = torch.empty_like(states[0])  # [B, H]
        grad_state = grad_last.contiguous()  # [B, H]
        for t in range(steps - 1, -1, -1):
            torch.mul(states[t + 1], states[t + 1], out=square)
            torch.addcmul(grad_state, grad_state, square, value=-1, out=grad_pre[t])  # × tanh' = 1 - h²
            if t:
                grad_state = grad_pre[t] @ weight_hh
        flat = grad_pre.view(-1, grad_pre.shape[-1])  # [T * B, H]
        grad_rows = grad_weight = None
        if ctx.needs_input_grad[1]:  # each letter's row gathers the gradients of the places it was read
            grad_rows = flat.new_zeros(ctx.n_letters, flat.shape[1]).index_add_(0, flat_letters, flat)
        if ctx.needs_input_grad[2]:  # Σ_t grad_pre_t^T h_{t-1}, as one product over all steps
            grad_weight = flat.t() @ states[:steps].reshape(flat.shape)  # [H, H]
        return None, grad_rows, grad_weight


def can_run(rnn: nn.Module, letters: torch.Tensor) -> bool:
    """Whether `rnn` on `letters` (indices [B, T], all T long) can take this path."""
    return (isinstance(rnn, nn.RNN) and rnn.nonlinearity == "tanh" and rnn.num_layers == 1 and rnn.bias
            and rnn.batch_first and letters.dtype == torch.long and letters.device.type == "cpu"
            and rnn.weight_hh_l0.device.type == "cpu" and letters.shape[1] > 0)


def last_states(rnn: nn.RNN, letters: torch.Tensor) -> torch.Tensor:
    """The last state of each direction, [B, directions * H]: nn.RNN's h_n of one-hot(letters), laid side by side."""
    directions = [""] + (["_reverse"] if rnn.bidirectional else [])
    lasts = []
    for suffix in directions:
        weight_ih = getattr(rnn, "weight_ih_l0" + suffix)  # [H, n_letters]
        rows = weight_ih.t() + (getattr(rnn, "bias_ih_l0" + suffix) + getattr(rnn, "bias_hh_l0" + suffix))  # [n_letters, H]
        order = letters.flip(1) if suffix else letters  # the reverse direction reads the name from its end
        lasts.append(TanhRecurrence.apply(order.t().contiguous(), rows, getattr(rnn, "weight_hh_l0" + suffix)))  # [B, H]
    return torch.cat(lasts, dim=1) if len(lasts) > 1 else lasts[0]


# ---- the GRU, for inference only ------------------------------------------------------------------------
# nn.GRU on a CPU multiplies the one-hot letters by W_ih, then per step runs one product and about ten
# element-wise passes over [B, 3H]. Here, without autograd, three things make it cheaper, none changes the function:
#   - the letters pick rows of W_ih (biases folded in) instead of a one-hot product;
#   - names that begin alike share their states: the forward direction's state after k letters depends on the
#     first k letters only, so each step runs once per distinct prefix (a trie, level by level), not once per
#     name; the reverse direction likewise per distinct ending. On the data set's 17,000 distinct names that
#     is 44% of the steps, on the bench's made-up spellings 37-49%; and names of any lengths run together;
#   - tanh is 2·sigmoid(2x) - 1 with the factor 2 folded into the n gate's weights (torch's CPU tanh is slow);
#   - a step's element-wise part is one pass of models/gru_gates.c (models/native.py builds it) where a C compiler
#     is found, else five torch passes.
# Same function as nn.GRU to float32 rounding (tests/test_speed.py).

GRU_INFERENCE = True  # False: nn.GRU answers (the reference the tests and bench/check_fast_path.py compare with)
NATIVE_GATES = True  # False: the step's element-wise part in torch, also where the C kernel could be built
BLOCK = 1024  # rows per product: a step's [rows, 3H] arrays stay in the core's cache


def can_run_gru(rnn: nn.Module, letters: torch.Tensor) -> bool:
    """Whether `rnn` on `letters` (indices [B, T]) can take the inference path (no gradient)."""
    return (GRU_INFERENCE and isinstance(rnn, nn.GRU) and not torch.is_grad_enabled() and rnn.num_layers == 1
            and rnn.bias and rnn.batch_first and letters.dtype == torch.long and letters.device.type == "cpu"
            and rnn.weight_hh_l0.device.type == "cpu" and rnn.weight_hh_l0.dtype == torch.float32
            and letters.shape[1] > 0)


def _gru_tables(rnn: nn.GRU) -> list[dict]:
    """Per direction: input rows [n_letters, 4H] (r and z with every bias; the n gate's 2 b_hn; 2 (W_in x + b_in)),
    so that one gather gives a step everything its letter adds, and the recurrent weight [H, 3H] (r, z, 2 W_hn).
    Built on every call (a few small products): a cache keyed on the weights' version counters went stale under
    the optimiser's in-place updates, which do not all move them, and validation during training read old
    weights."""
    suffixes = [""] + (["_reverse"] if rnn.bidirectional else [])
    h, tables = rnn.hidden_size, []
    with torch.no_grad():
        for s in suffixes:
            w_ih, w_hh = getattr(rnn, f"weight_ih_l0{s}"), getattr(rnn, f"weight_hh_l0{s}")  # [3H, n_letters], [3H, H]
            b_ih, b_hh = getattr(rnn, f"bias_ih_l0{s}"), getattr(rnn, f"bias_hh_l0{s}")  # [3H]
            rows = w_ih.t() + b_ih  # [n_letters, 3H]
            tables.append({
                "rows": torch.cat([rows[:, :2 * h] + b_hh[:2 * h], (2 * b_hh[2 * h:]).expand(len(rows), h),
                                   2 * rows[:, 2 * h:]], 1).contiguous(),  # [n_letters, 4H]
                "w_hh": torch.cat([w_hh[:2 * h], 2 * w_hh[2 * h:]]).t().contiguous()})  # [H, 3H]
    return tables


_MINUS_ONE = torch.tensor(-1.0)


def _gru_steps(t: dict, letter: torch.Tensor, previous: torch.Tensor, out: torch.Tensor, buffer: torch.Tensor) -> None:
    """One step of the GRU for rows that read `letter` [R] from states `previous` [R, H]: the new states into `out`.
    `buffer` [>= R, 4H] is scratch space, reused from block to block: the product adds into the gathered rows in
    place, and five element-wise passes follow (two sigmoids, the n gate's r-product and input, 2 s - 1, the lerp)."""
    h = previous.shape[1]
    gates = torch.index_select(t["rows"], 0, letter, out=buffer[:len(letter)])  # [R, 4H]
    gates[:, :3 * h].addmm_(previous, t["w_hh"])  # r, z before sigmoid; 2 (W_hn h + b_hn)
    rz = gates[:, :2 * h].sigmoid_()
    n = gates[:, 3 * h:].addcmul_(rz[:, :h], gates[:, 2 * h:3 * h]).sigmoid_()  # 2 (W_in x + b_in + r (W_hn h + b_hn))
    torch.add(_MINUS_ONE, n, alpha=2, out=n)  # tanh(x) as 2 sigmoid(2x) - 1, in one pass
    torch.lerp(n, previous, rz[:, h:2 * h], out=out)  # n + z (h - n)


def _gru_level_by_children(t: dict, states: torch.Tensor, parent: torch.Tensor, letter: torch.Tensor,
                           out: torch.Tensor, previous: torch.Tensor, buffer: torch.Tensor) -> None:
    """One trie level in torch: the children's states into `out` [R, H], child i one letter `letter[i]` on from
    `states[parent[i]]`, BLOCK children at a time, each with its own copy of its parent's state and product."""
    for i in range(0, len(parent), BLOCK):
        rows = parent[i:i + BLOCK]
        torch.index_select(states, 0, rows, out=previous[:len(rows)])
        _gru_steps(t, letter[i:i + BLOCK], previous[:len(rows)], out[i:i + BLOCK], buffer)


def _gru_level_by_parents(kernel, t: dict, states: torch.Tensor, parent: torch.Tensor, letter: torch.Tensor,
                          out: torch.Tensor, previous: torch.Tensor, buffer: torch.Tensor) -> None:
    """One trie level with the C kernel: the children's states into `out` [R, H], child i one letter `letter[i]` on
    from its parent's state `states[parent[i]]` (`parent` sorted, as torch.unique leaves it). A parent's recurrent
    product is computed once for all its children (at the first levels a parent has dozens), BLOCK parents at a
    time; `previous` [BLOCK, H] and `buffer` [BLOCK, >= 3H] are scratch space."""
    h = states.shape[1]
    parents, slot, counts = torch.unique_consecutive(parent, return_inverse=True, return_counts=True)
    ends = [0] + counts.cumsum(0).tolist()  # parent j's children are ends[j]:ends[j + 1]
    for j in range(0, len(parents), BLOCK):
        block = parents[j:j + BLOCK]
        parent_states = torch.index_select(states, 0, block, out=previous[:len(block)])
        recurrent = torch.mm(parent_states, t["w_hh"], out=buffer.view(-1)[:len(block) * 3 * h].view(len(block), 3 * h))
        first, last = ends[j], ends[j + len(block)]
        kernel(recurrent.data_ptr(), parent_states.data_ptr(), slot[first:].data_ptr(), j, t["rows"].data_ptr(),
               letter[first:].data_ptr(), out[first:].data_ptr(), last - first, h)


def _gru_direction(t: dict, letters: torch.Tensor, alive: list[int], out: torch.Tensor, project: torch.Tensor | None,
                   turns: tuple[torch.Tensor, torch.Tensor]) -> None:
    """One direction over `letters` [N, T] in reading order, names sorted longest first (`alive[k]` of them at least
    k long): level k of the trie holds the distinct first k letters of the names that long. Each name's last state
    goes to its row of `out`: the state itself (`out` [N, H]), or with `project` [H, C] the state times it, added
    to the row (`out` [N, C]: a head's logits, this direction's part), so that no [N, H] array is needed. A level's
    states are written into one of `turns` (two [N, H] arrays) while the other holds the level before's."""
    n_letters, hidden = t["rows"].shape[0], t["w_hh"].shape[0]
    node = out.new_zeros(len(letters), dtype=torch.long)  # each name's node at the level before; the root's state is 0
    states = out.new_zeros(1, hidden)
    buffer, previous = out.new_empty(BLOCK, 4 * hidden), out.new_empty(BLOCK, hidden)  # reused by every block
    kernel = native.gru_children() if NATIVE_GATES else None
    for k in range(len(alive) - 2):
        reading, longer = alive[k + 1], alive[k + 2]  # the names at least k + 1 long come first, those longer before them
        if reading == 0:
            break
        distinct, inverse = torch.unique(node[:reading] * n_letters + letters[:reading, k], return_inverse=True)
        parent, letter = distinct.div(n_letters, rounding_mode="floor"), distinct.remainder(n_letters)
        new = turns[k % 2][:len(distinct)]  # the states of the distinct prefixes k + 1 long (no more than the names reading)
        if kernel is not None:
            _gru_level_by_parents(kernel, t, states, parent, letter, new, previous, buffer)
        else:
            _gru_level_by_children(t, states, parent, letter, new, previous, buffer)
        ending = inverse[longer:reading]  # the names exactly k + 1 long
        if project is None:
            torch.index_select(new, 0, ending, out=out[longer:reading])
        else:
            out[longer:reading].addmm_(new.index_select(0, ending), project)
        node, states = inverse, new


def _each_reversed(letters: torch.Tensor, alive: list[int]) -> torch.Tensor:
    """Each row of `letters` [N, T] read from its own last letter, zero-padded after: rows sorted longest first,
    `alive[k]` of them at least k long. One slice copy per length, from the array flipped end to end."""
    width = letters.shape[1]
    reversed_rows, flipped = torch.zeros_like(letters), letters.flip(1)
    for length in range(1, width + 1):  # rows alive[length + 1]:alive[length] are this long
        rows = slice(alive[length + 1], alive[length])
        reversed_rows[rows, :length] = flipped[rows, width - length:]
    return reversed_rows


def gru_last_states(rnn: nn.GRU, letters: torch.Tensor, lengths: torch.Tensor,
                    head: nn.Linear | None = None) -> torch.Tensor:
    """nn.GRU's h_n of one-hot(letters) [B, T], each name read to its length [B]: directions side by side, [B, D * H].
    With `head`, head(h_n) [B, C] instead, each direction's part of the logits added as its names end: a call then
    holds no name's states once its level is done (20,000 names, hidden 128, two directions: 20 MB less)."""
    tables = _gru_tables(rnn)
    lengths = lengths.to(letters.device)
    order = torch.argsort(lengths, descending=True, stable=True)  # a name ends at the same level in both directions
    width = letters.shape[1]
    alive = torch.bincount(lengths, minlength=width + 2).flip(0).cumsum(0).flip(0).tolist()  # names >= k long
    # the letters sorted, and reversed for the reverse direction, as bytes where the alphabet allows: int64 copies
    # ([B, T], T the longest name of the call) were most of a call's memory
    forward = letters.to(torch.uint8 if rnn.input_size <= 256 else torch.int32)[order]
    reads = [forward, _each_reversed(forward, alive)] if rnn.bidirectional else [forward]
    hidden, lasts = rnn.hidden_size, []
    logits = None if head is None else head.bias.repeat(len(letters), 1)  # [B, C], a new array: the bias stays
    # every level's states in the same two arrays, in both directions: a fresh array per level, each larger than
    # the last, grew the heap by all the levels' states together
    turns = (rnn.weight_hh_l0.new_empty(len(letters), hidden), rnn.weight_hh_l0.new_empty(len(letters), hidden))
    for d, (t, read) in enumerate(zip(tables, reads)):
        if head is None:
            lasts.append(rnn.weight_hh_l0.new_empty(len(letters), hidden))
            _gru_direction(t, read, alive, lasts[-1], None, turns)
        else:
            _gru_direction(t, read, alive, logits, head.weight[:, d * hidden:(d + 1) * hidden].t(), turns)
    last = torch.cat(lasts, 1) if head is None else logits
    return last.index_select(0, torch.argsort(order))  # back to the callers' order

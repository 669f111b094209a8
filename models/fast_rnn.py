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
# element-wise passes over [B, 3H] per direction, each direction in turn. Here, without autograd: the
# letters pick rows of W_ih (biases folded in), both directions run as one batched product per step, and
# tanh is 2·sigmoid(2x) - 1 with the factor 2 folded into the n gate's weights (torch's CPU tanh is slow).
# Same function as nn.GRU to float32 rounding (tests/test_speed.py).

GRU_INFERENCE = True  # False: nn.GRU answers (the reference the tests and bench/check_fast_path.py compare with)


def can_run_gru(rnn: nn.Module, letters: torch.Tensor) -> bool:
    """Whether `rnn` on `letters` (indices [B, T], all T long) can take the inference path (no gradient)."""
    return (GRU_INFERENCE and isinstance(rnn, nn.GRU) and not torch.is_grad_enabled() and rnn.num_layers == 1 and rnn.bias
            and rnn.batch_first and letters.dtype == torch.long and letters.device.type == "cpu"
            and rnn.weight_hh_l0.device.type == "cpu" and rnn.weight_hh_l0.dtype == torch.float32
            and letters.shape[1] > 0)


def _gru_tables(rnn: nn.GRU) -> dict:
    """Per direction d (stacked): input rows [D * n_letters, 3H] (r and z with every bias; the n gate's 2 b_hn) and
    [D * n_letters, H] (2 (W_in x + b_in)), recurrent weights [D, H, 3H] (r, z, 2 W_hn). Cached on the module,
    rebuilt when a weight changes (its version counter moves)."""
    suffixes = [""] + (["_reverse"] if rnn.bidirectional else [])
    params = [getattr(rnn, f"{kind}_l0{s}") for s in suffixes for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    stamp = tuple((p.data_ptr(), p._version) for p in params)
    cached = getattr(rnn, "_inference_tables", None)
    if cached is not None and cached["stamp"] == stamp:
        return cached
    h = rnn.hidden_size
    rows_h, rows_n, w_hh = [], [], []
    with torch.no_grad():
        for s in suffixes:
            w_ih, weight_hh = getattr(rnn, f"weight_ih_l0{s}"), getattr(rnn, f"weight_hh_l0{s}")  # [3H, n_letters], [3H, H]
            b_ih, b_hh = getattr(rnn, f"bias_ih_l0{s}"), getattr(rnn, f"bias_hh_l0{s}")  # [3H]
            rows = w_ih.t() + b_ih  # [n_letters, 3H]
            rows_h.append(torch.cat([rows[:, :2 * h] + b_hh[:2 * h], (2 * b_hh[2 * h:]).expand(len(rows), h)], 1))
            rows_n.append(2 * rows[:, 2 * h:])
            w_hh.append(torch.cat([weight_hh[:2 * h], 2 * weight_hh[2 * h:]]).t())  # [H, 3H]
        rnn._inference_tables = {"stamp": stamp, "rows_h": torch.cat(rows_h).contiguous(),
                                 "rows_n": torch.cat(rows_n).contiguous(), "w_hh": torch.stack(w_hh).contiguous()}
    return rnn._inference_tables


def gru_last_states(rnn: nn.GRU, letters: torch.Tensor) -> torch.Tensor:
    """nn.GRU's h_n of one-hot(letters) [B, T] (every name T long), directions side by side: [B, directions * H]."""
    t = _gru_tables(rnn)
    directions, (batch, steps), h = t["w_hh"].shape[0], letters.shape, rnn.hidden_size
    n_letters = t["rows_n"].shape[0] // directions
    # index [T, D * B] of each direction's letter at each step, into the stacked row tables
    order = [letters.t()] + ([letters.flip(1).t() + n_letters] if directions == 2 else [])
    index = torch.cat(order, 1).contiguous()  # [T, D * B]
    state = torch.zeros(directions, batch, h)  # [D, B, H]
    gates = state.new_empty(directions, batch, 3 * h)
    for step in range(steps):
        # r and z before their sigmoid, then 2 (W_hn h + b_hn)
        torch.baddbmm(t["rows_h"].index_select(0, index[step]).view(directions, batch, -1), state, t["w_hh"], out=gates)
        rz = gates[..., :2 * h].sigmoid_()
        n = gates[..., 2 * h:].mul_(rz[..., :h]).add_(t["rows_n"].index_select(0, index[step]).view(directions, batch, -1))
        n.sigmoid_().mul_(2).sub_(1)  # tanh(W_in x + b_in + r (W_hn h + b_hn)), as 2 sigmoid(2x) - 1
        state = torch.addcmul(n, rz[..., h:], state.sub_(n))  # n + z (h - n)
    return torch.cat(list(state), dim=1) if directions == 2 else state[0]

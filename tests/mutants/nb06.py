"""Wrong answers to the exercises of notebook 06 (see tests/test_mutants.py)."""

NOTEBOOK = "06_rnn_and_lstm.ipynb"

_LSTM = """
hx = {cat}
f = torch.sigmoid(hx @ W["f"].T + b["f"])
i = torch.sigmoid(hx @ W["i"].T + b["i"])
n = {n}
c = {c}
o = torch.sigmoid(hx @ W["o"].T + b["o"])
h = {h}
return h, c
"""
_LSTM_GOOD = dict(cat="torch.cat([h, x], dim=1)", n='torch.tanh(hx @ W["n"].T + b["n"])', c="c * f + n * i",
                  h="o * torch.tanh(c)")

_LOGP = """
model.eval()
device = next(model.parameters()).device
ids = torch.tensor([vocab.encode(tokenize(sentence))], device=device)
with torch.no_grad():
    logits, _ = model({inputs})
log_probs = {log_probs}
return log_probs.gather(1, {targets}).{reduce}().item()
"""
_LOGP_GOOD = dict(inputs="ids[:, :-1]", log_probs="logits[0].log_softmax(-1)", targets="ids[0, 1:, None]", reduce="sum")

MUTANTS = {
    "06_rnn_step": [
        dict(name="previous state ignored", common=True, source="return torch.tanh(x @ W_xh.T + b)"),
        dict(name="sigmoid instead of tanh", common=True,
             source="return torch.sigmoid(x @ W_xh.T + h @ W_hh.T + b)"),
        dict(name="W_hh not transposed", common=True, source="return torch.tanh(x @ W_xh.T + h @ W_hh + b)"),
        dict(name="bias forgotten", common=True, source="return torch.tanh(x @ W_xh.T + h @ W_hh.T)"),
    ],
    "06_lstm_step": [
        dict(name="[x, h] instead of [h, x]", common=True,
             source=_LSTM.format(**{**_LSTM_GOOD, "cat": "torch.cat([x, h], dim=1)"})),
        dict(name="forget gate not applied", common=True, source=_LSTM.format(**{**_LSTM_GOOD, "c": "c + n * i"})),
        dict(name="h = o * C without tanh", common=True, source=_LSTM.format(**{**_LSTM_GOOD, "h": "o * c"})),
        dict(name="candidate through a sigmoid", common=True,
             source=_LSTM.format(**{**_LSTM_GOOD, "n": 'torch.sigmoid(hx @ W["n"].T + b["n"])'})),
    ],
    "06_temperature": [
        dict(name="multiplies by the temperature", common=True, source="""
if temperature < 0:
    raise ValueError(f"temperature must be >= 0, got {temperature}")
if temperature == 0:
    return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
return torch.softmax(logits * temperature, dim=-1)
"""),
        dict(name="softmax over the first axis", common=True, source="""
if temperature < 0:
    raise ValueError(f"temperature must be >= 0, got {temperature}")
if temperature == 0:
    return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
return torch.softmax(logits / temperature, dim=0)
"""),
        dict(name="no special case for T = 0 (division by zero)", common=True, source="""
if temperature < 0:
    raise ValueError(f"temperature must be >= 0, got {temperature}")
return torch.softmax(logits / temperature, dim=-1)
"""),
        dict(name="negative temperature accepted", source="""
if temperature == 0:
    return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
return torch.softmax(logits / abs(temperature), dim=-1)
"""),
    ],
    "06_sentence_log_prob": [
        dict(name="scores the current word instead of the next", common=True,
             source=_LOGP.format(**{**_LOGP_GOOD, "targets": "ids[0, :-1, None]"})),
        dict(name="raw logits instead of log-probabilities", common=True,
             source=_LOGP.format(**{**_LOGP_GOOD, "log_probs": "logits[0]"})),
        dict(name="mean instead of sum", common=True, source=_LOGP.format(**{**_LOGP_GOOD, "reduce": "mean"})),
        dict(name="log of the softmax over the wrong axis", common=True,
             source=_LOGP.format(**{**_LOGP_GOOD, "log_probs": "logits[0].log_softmax(0)"})),
    ],
}

_BPTT = """
dxs = torch.zeros_like(xs)
dW_xh, dW_hh = torch.zeros_like(W_xh), torch.zeros_like(W_hh)
db = torch.zeros(W_hh.shape[0], dtype=hs.dtype)
dh_next = torch.zeros_like(h0)
for t in {order}:
    dh = {dh}
    da = {da}
    h_prev = {h_prev}
    dW_xh += da.T @ xs[t]
    dW_hh += {dW_hh}
    db += da.sum(dim=0)
    dxs[t] = da @ W_xh
    dh_next = {dh_next}
return {{"xs": dxs, "h0": dh_next, "W_xh": dW_xh, "W_hh": dW_hh, "b": db}}
"""
_BPTT_GOOD = dict(order="reversed(range(len(xs)))", dh="dhs[t] + dh_next", da="dh * (1 - hs[t] ** 2)",
                  h_prev="hs[t - 1] if t > 0 else h0", dW_hh="da.T @ h_prev", dh_next="da @ W_hh")

MUTANTS["06_rnn_backward"] = [
    dict(name="no gradient through time (dh = dhs[t])", common=True,
         source=_BPTT.format(**{**_BPTT_GOOD, "dh": "dhs[t]"})),
    dict(name="h_prev off by one (hs[t])", common=True,
         source=_BPTT.format(**{**_BPTT_GOOD, "h_prev": "hs[t]"})),
    dict(name="tanh derivative forgotten", common=True, source=_BPTT.format(**{**_BPTT_GOOD, "da": "dh"})),
    dict(name="tanh derivative as 1 - h", common=True, source=_BPTT.format(**{**_BPTT_GOOD, "da": "dh * (1 - hs[t])"})),
    dict(name="dW_hh transposed", common=True, source=_BPTT.format(**{**_BPTT_GOOD, "dW_hh": "h_prev.T @ da"})),
    dict(name="walks forwards in time", common=True,
         source=_BPTT.format(**{**_BPTT_GOOD, "order": "range(len(xs))"})),
    dict(name="W_hh not transposed on the way back", common=True,
         source=_BPTT.format(**{**_BPTT_GOOD, "dh_next": "da @ W_hh.T"})),
]

_SAMPLE = """
{mode}
ids = [vocab.start_id]
with torch.no_grad():
    logits, state = model(torch.tensor([ids]))
    for _ in range({steps}):
        scores = logits[0, -1].clone()
        {mask}
        probs = {probs}
        if temperature == 0:
            next_id = int(probs.argmax())
        else:
            next_id = int(torch.multinomial(probs, 1, generator={generator}))
        ids.append(next_id)
        if next_id == vocab.end_id:
            break
        logits, state = {feed}
return vocab.decode(ids)
"""
_SAMPLE_GOOD = dict(mode="model.eval()", steps="max_len",
                    mask='scores[[vocab.pad_id, vocab.start_id]] = float("-inf")',
                    probs="language_model.apply_temperature(scores, temperature)", generator="generator",
                    feed="model(torch.tensor([[next_id]]), state)")

MUTANTS["06_sample_sentence"] = [
    dict(name="stays in training mode (dropout on)", common=True, hint="model.eval()",
         source=_SAMPLE.format(**{**_SAMPLE_GOOD, "mode": "pass"})),
    dict(name="state not carried", common=True,
         source=_SAMPLE.format(**{**_SAMPLE_GOOD, "feed": "model(torch.tensor([[next_id]]))"})),
    dict(name="temperature ignored", common=True,
         source=_SAMPLE.format(**{**_SAMPLE_GOOD, "probs": "torch.softmax(scores, dim=-1)"})),
    dict(name="the caller's generator ignored", common=True,
         source=_SAMPLE.format(**{**_SAMPLE_GOOD, "generator": "None"})),
    dict(name="<pad> and <start> not masked", source=_SAMPLE.format(**{**_SAMPLE_GOOD, "mask": "pass"})),
    dict(name="one word short (max_len - 1)", source=_SAMPLE.format(**{**_SAMPLE_GOOD, "steps": "max_len - 1"})),
]

_LAYER = """
steps, batch = xs.shape[:2]
hidden = W["f"].shape[0]
h, c = {init}
lengths = torch.full((batch,), steps) if lengths is None else torch.as_tensor(lengths)
outputs = []
for t in range(steps):
    h_new, c_new = rnn_cells.lstm_step(xs[t], {h_in}, {c_in}, W, b)
    running = ({condition}).unsqueeze(1)
    h = {h_keep}
    c = {c_keep}
    outputs.append({output})
return torch.stack(outputs), {final}
"""
_ZEROS = "(xs.new_zeros(batch, hidden), xs.new_zeros(batch, hidden))"
_LAYER_GOOD = dict(init=f"state if state is not None else {_ZEROS}",
                   h_in="h", c_in="c", condition="t < lengths", h_keep="torch.where(running, h_new, h)",
                   c_keep="torch.where(running, c_new, c)", output="h_new * running", final="(h, c)")

MUTANTS["06_lstm_forward"] = [
    dict(name="lengths ignored: the state runs through the padding", common=True, hint="own last step",
         source=_LAYER.format(**{**_LAYER_GOOD, "h_keep": "h_new", "c_keep": "c_new"})),
    dict(name="outputs not zeroed past the end", common=True, hint="zeros past",
         source=_LAYER.format(**{**_LAYER_GOOD, "output": "h_new"})),
    dict(name="off by one: t <= lengths", common=True,
         source=_LAYER.format(**{**_LAYER_GOOD, "condition": "t <= lengths"})),
    dict(name="memory cell not carried", common=True,
         source=_LAYER.format(**{**_LAYER_GOOD, "c_in": "torch.zeros_like(c)"})),
    dict(name="hidden state not carried", common=True,
         source=_LAYER.format(**{**_LAYER_GOOD, "h_in": "torch.zeros_like(h)"})),
    dict(name="initial state ignored", common=True, hint="given state",
         source=_LAYER.format(**{**_LAYER_GOOD, "init": _ZEROS})),
    dict(name="returns (c_n, h_n)", common=True, source=_LAYER.format(**{**_LAYER_GOOD, "final": "(c, h)"})),
    dict(name="outputs hold the cell state", common=True,
         source=_LAYER.format(**{**_LAYER_GOOD, "output": "c_new * running"})),
]

"""Wrong answers to the exercises of notebook 08 (see tests/test_mutants.py)."""

NOTEBOOK = "08_show_and_tell.ipynb"

_BN = """
z = linear(features.mean(dim={regions}))
if {training}:
    mean = z.mean(dim={stat_dim})
    var = z.var(dim={stat_dim}, unbiased={unbiased})
    {no_grad}:
        {update_mean}
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * z.var(dim=0, unbiased={running_unbiased}))
else:
    mean, var = bn.running_mean, bn.running_var
normalised = (z - mean) / {denominator}
return ({affine}).unsqueeze(1)
"""
_BN_GOOD = dict(regions="1", training="bn.training", stat_dim="0", unbiased="False", no_grad="with torch.no_grad()",
                update_mean="bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)", running_unbiased="True",
                denominator="torch.sqrt(var + bn.eps)", affine="normalised * bn.weight + bn.bias")

_CE = """
log_probs = {log_probs}
nll = -log_probs.gather(2, targets.unsqueeze(2)).squeeze(2)
mask = ({mask}).float()
return {reduce}
"""
_CE_GOOD = dict(log_probs="torch.log_softmax(logits, dim=-1)", mask="targets != pad_id",
                reduce="(nll * mask).sum() / mask.sum()")

_FORWARD = """
image = {image}
_, state = self.lstm(image)
words = {words}
hidden, _ = self.lstm({lstm_input})
return {out}
"""
_FORWARD_GOOD = dict(image="self.image_proj(features.mean(dim=1)).unsqueeze(1)",
                     words="self.embedding(captions[:, :-1])", lstm_input="words, state",
                     out="self.fc(self.dropout(hidden))")

_LOSS = """
logits = self(features, captions)
targets = {targets}
steps = torch.arange(targets.shape[1], device=captions.device)
mask = steps[None, :] < ({limit})[:, None]
log_probs = torch.log_softmax(logits, dim=-1)
nll = -log_probs.gather(2, targets.unsqueeze(2)).squeeze(2)
return {reduce}
"""
_LOSS_GOOD = dict(targets="captions[:, 1:]", limit="lengths.to(captions.device) - 1", reduce="nll[mask].mean()")

_GREEDY = """
batch = features.shape[0]
result = [[] for _ in range(batch)]
done = [False] * batch
with {context}:
    state = decoder.init_state(features)
    words = torch.full((batch,), start_id, dtype=torch.long, device=features.device)
    for _ in range({steps}):
        logits, state, _ = decoder.step(state, words)
        words = logits.argmax(dim={axis})
        for i, w in enumerate(words.tolist()):
            if done[i]:
                continue
            if w == end_id:
                {on_end}
            else:
                result[i].append(w)
        if {stop}(done):
            break
return result
"""
_GREEDY_GOOD = dict(context="evaluating(decoder), torch.no_grad()", steps="max_len", axis="1",
                    on_end="done[i] = True", stop="all")

MUTANTS = {
    "08_image_input": [
        dict(name="batch statistics in eval mode too", common=True, hint="running statistics",
             source=_BN.format(**{**_BN_GOOD, "training": "True"})),
        dict(name="normalised with the unbiased variance", common=True, hint="biased variance",
             source=_BN.format(**{**_BN_GOOD, "unbiased": "True"})),
        dict(name="running statistics never updated", common=True, hint="running_mean", source="""
z = linear(features.mean(dim=1))
if bn.training:
    mean, var = z.mean(dim=0), z.var(dim=0, unbiased=False)
else:
    mean, var = bn.running_mean, bn.running_var
return ((z - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias).unsqueeze(1)
"""),
        dict(name="running_var updated with the biased variance", common=True, hint="running_var",
             source=_BN.format(**{**_BN_GOOD, "running_unbiased": "False"})),
        dict(name="scale and shift (weight, bias) forgotten", common=True,
             source=_BN.format(**{**_BN_GOOD, "affine": "normalised"})),
        dict(name="statistics over the features instead of the batch",
             source=_BN.format(**{**_BN_GOOD, "stat_dim": "1, keepdim=True"})),
        dict(name="eps outside the square root", source=_BN.format(**{**_BN_GOOD,
                                                                       "denominator": "(torch.sqrt(var) + bn.eps)"})),
        dict(name="no gradient through the batch statistics", source="""
z = linear(features.mean(dim=1))
if bn.training:
    with torch.no_grad():
        mean, var = z.mean(dim=0), z.var(dim=0, unbiased=False)
        bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * z.var(dim=0, unbiased=True))
else:
    mean, var = bn.running_mean, bn.running_var
return ((z - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias).unsqueeze(1)
"""),
    ],
    "08_masked_cross_entropy": [
        dict(name="<pad> positions counted in the mean", common=True, hint="<pad>",
             source=_CE.format(**{**_CE_GOOD, "reduce": "(nll * mask).sum() / mask.numel()"})),
        dict(name="log-softmax over the wrong axis", common=True, hint="wrong axis",
             source=_CE.format(**{**_CE_GOOD, "log_probs": "torch.log_softmax(logits, dim=1)"})),
        dict(name="a mean per caption, then over captions", common=True, hint="per caption",
             source=_CE.format(**{**_CE_GOOD, "reduce": "((nll * mask).sum(1) / mask.sum(1)).mean()"})),
        dict(name="probabilities instead of log-probabilities", common=True,
             source=_CE.format(**{**_CE_GOOD, "log_probs": "torch.softmax(logits, dim=-1)"})),
        dict(name="pad id hard-coded to 0", source=_CE.format(**{**_CE_GOOD, "mask": "targets != 0"})),
        dict(name="the loss detached from the graph",
             source=_CE.format(**{**_CE_GOOD, "reduce": "torch.tensor(float((nll * mask).sum() / mask.sum()))"})),
    ],
    "08_teacher_forcing": [
        dict(name="<end> fed as an input (the whole caption goes in)", common=True, hint="max_len - 1",
             source=_FORWARD.format(**{**_FORWARD_GOOD, "words": "self.embedding(captions)"})),
        dict(name="image fed at every step", common=True, hint="first step",
             source=_FORWARD.format(**{**_FORWARD_GOOD, "lstm_input": "words + image"})),
        dict(name="the image step's state thrown away", common=True, hint="first step",
             source=_FORWARD.format(**{**_FORWARD_GOOD, "lstm_input": "words"})),
        dict(name="image and words in one sequence, the image step's output scored", common=True,
             hint="one step late", source="""
image = self.image_proj(features.mean(dim=1)).unsqueeze(1)
words = self.embedding(captions[:, :-1])
hidden, _ = self.lstm(torch.cat([image, words], dim=1))
return self.fc(self.dropout(hidden[:, :-1]))
"""),
        dict(name="batch norm forgotten on the image vector", common=True,
             source=_FORWARD.format(**{**_FORWARD_GOOD,
                                       "image": "self.image_proj[0](features.mean(dim=1)).unsqueeze(1)"})),
        dict(name="dropout forgotten", common=True, hint="dropout",
             source=_FORWARD.format(**{**_FORWARD_GOOD, "out": "self.fc(hidden)"})),
        dict(name="dropout on the word embeddings instead of the LSTM's outputs",
             source=_FORWARD.format(**{**_FORWARD_GOOD, "lstm_input": "self.dropout(words), state",
                                       "out": "self.fc(hidden)"})),
        dict(name="<pad> positions counted in the mean", common=True, hint="<pad>", block=1,
             source=_LOSS.format(**{**_LOSS_GOOD, "reduce": "nll.mean()"})),
        dict(name="mask off by one: lengths instead of lengths - 1", common=True, hint="one position too many",
             block=1, source=_LOSS.format(**{**_LOSS_GOOD, "limit": "lengths.to(captions.device)"})),
        dict(name="a mean per caption, then over captions", common=True, hint="per caption", block=1,
             source=_LOSS.format(**{**_LOSS_GOOD, "reduce": "((nll * mask).sum(1) / mask.sum(1)).mean()"})),
        dict(name="targets not shifted (scores the word just read)", common=True, block=1,
             source=_LOSS.format(**{**_LOSS_GOOD, "targets": "captions[:, :-1]"})),
    ],
    "08_greedy_caption": [
        dict(name="eval mode forgotten (dropout on while decoding)", common=True, hint="eval mode",
             source=_GREEDY.format(**{**_GREEDY_GOOD, "context": "torch.no_grad()"})),
        dict(name="eval mode set but the decoder's mode not given back", common=True, hint="mode it had",
             source=_GREEDY.format(**{**_GREEDY_GOOD, "context": "torch.no_grad()"}).replace(
                 "batch = features.shape[0]", "decoder.eval()\nbatch = features.shape[0]")),
        dict(name="does not stop at <end>: the words after it are kept", common=True, source="""
batch = features.shape[0]
result = [[] for _ in range(batch)]
with evaluating(decoder), torch.no_grad():
    state = decoder.init_state(features)
    words = torch.full((batch,), start_id, dtype=torch.long, device=features.device)
    for _ in range(max_len):
        logits, state, _ = decoder.step(state, words)
        words = logits.argmax(dim=1)
        for i, w in enumerate(words.tolist()):
            if w != end_id:
                result[i].append(w)
return result
"""),
        dict(name="<end> kept in the caption", common=True,
             source=_GREEDY.format(**{**_GREEDY_GOOD,
                                      "on_end": "done[i] = True\n                result[i].append(w)"})),
        dict(name="argmax over the batch axis", source=_GREEDY.format(**{**_GREEDY_GOOD, "axis": "0"})),
        dict(name="stops when the first caption ends", source=_GREEDY.format(**{**_GREEDY_GOOD, "stop": "any"})),
        dict(name="one step short (max_len - 1)", source=_GREEDY.format(**{**_GREEDY_GOOD, "steps": "max_len - 1"})),
    ],
}

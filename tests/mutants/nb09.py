"""Wrong answers to the exercises of notebook 09 (see tests/test_mutants.py)."""

NOTEBOOK = "09_attention_captioner.ipynb"

_ATTENTION = """
batch, num_pixels, attention_dim = projected.shape
query = {query}
energy = {energy}
alpha = torch.softmax(self.score(energy).squeeze(3), dim={dim})
context = {context}
return context.flatten(0, 1), alpha.flatten(0, 1)
"""
_ATTENTION_GOOD = dict(query="self.hidden_proj(hidden).view(batch, -1, 1, attention_dim)",
                       energy="torch.tanh(projected.unsqueeze(1) + query)", dim="2",
                       context="torch.bmm(alpha, features)")

_INIT = """
mean = {mean}
return {h}, {c}
"""
_INIT_GOOD = dict(mean="features.mean(dim=1)", h="torch.tanh(init_h(mean))", c="torch.tanh(init_c(mean))")

_STEP = """
context, alpha = decoder.attention(features, decoder.attention.project(features), h)
gate = torch.sigmoid(decoder.gate(h))
x = {x}
h, c = decoder.lstm(x, (h, c))
logits = {logits}
return {result}
"""
_STEP_GOOD = dict(x="torch.cat([decoder.embedding(words), gate * context], dim=1)",
                  logits="decoder.fc(decoder.dropout(h))", result="logits, h, c, alpha")

_PENALTY = """
steps = torch.arange(alphas.shape[1], device=alphas.device)
real = steps[None, :] < {bound}
totals = {totals}
return {result}
"""
_PENALTY_GOOD = dict(bound="(lengths.to(alphas.device) - 1)[:, None]",
                     totals="(alphas * real.unsqueeze(2)).sum(dim=1)", result="((1.0 - totals) ** 2).mean()")

_FORWARD = """
batch, num_pixels, _ = features.shape
steps = lengths.cpu() - 1
order = {order}
features, captions, steps = features[order], captions[order], steps[order]
scores = features.new_zeros(batch, int(steps[0]), decoder.fc.out_features)
alphas = features.new_zeros(batch, int(steps[0]), num_pixels)
projected = decoder.attention.project(features)
mean = {mean}
h, c = torch.tanh(decoder.init_h(mean)), torch.tanh(decoder.init_c(mean))
for t in range(int(steps[0])):
    n = int((steps > t).sum())
    context, alpha = decoder.attention(features[:n], projected[:n], h[:n])
    gate = torch.sigmoid(decoder.gate(h[:n]))
    x = torch.cat([decoder.embedding(captions[:n, {word}]), {context}], dim=1)
    h, c = {lstm}
    scores[:n, t] = decoder.fc({dropout})
    alphas[:n, t] = alpha
back = order.argsort()
return {result}
"""
_FORWARD_GOOD = dict(order="torch.sort(steps, descending=True, stable=True).indices", mean="features.mean(dim=1)",
                     word="t", context="gate * context", lstm="decoder.lstm(x, (h[:n], c[:n]))",
                     dropout="decoder.dropout(h)", result="scores[back], alphas[back]")

_LOAD = """
state = torch.load(path, weights_only=True)
model.load_state_dict(state["model"])
{optimizer}
{scheduler}
{rng}
return {epoch}
"""
_LOAD_GOOD = dict(optimizer='optimizer.load_state_dict(state["optimizer"])',
                  scheduler='scheduler.load_state_dict(state["scheduler"])',
                  rng='torch.set_rng_state(state["rng"])', epoch='int(state["epoch"])')

MUTANTS = {
    "09_attention": [
        dict(name="softmax over the batch", common=True, hint="wrong dimension",
             source=_ATTENTION.format(**{**_ATTENTION_GOOD, "dim": "0"})),
        dict(name="no tanh: the lab report's linear score, blind to h", common=True,
             source=_ATTENTION.format(**{**_ATTENTION_GOOD, "energy": "projected.unsqueeze(1) + query"})),
        dict(name="context not weighted (plain mean of the regions)", common=True, source=_ATTENTION.format(**{
            **_ATTENTION_GOOD, "context": "features.mean(dim=1, keepdim=True).expand(-1, alpha.shape[1], -1)"})),
        dict(name="beams taken beam-major", common=True, hint="beams", source=_ATTENTION.format(**{
            **_ATTENTION_GOOD, "query": "self.hidden_proj(hidden).view(-1, batch, 1, attention_dim).transpose(0, 1)"})),
        dict(name="hidden term not broadcast over the regions", source=_ATTENTION.format(**{
            **_ATTENTION_GOOD, "query": "self.hidden_proj(hidden).view(batch, -1, attention_dim)"})),
    ],
    "09_init_state": [
        dict(name="state from the first region instead of the mean", common=True,
             source=_INIT.format(**{**_INIT_GOOD, "mean": "features[:, 0]"})),
        dict(name="sum of the regions instead of the mean", common=True,
             source=_INIT.format(**{**_INIT_GOOD, "mean": "features.sum(dim=1)"})),
        dict(name="no tanh", common=True,
             source=_INIT.format(**{**_INIT_GOOD, "h": "init_h(mean)", "c": "init_c(mean)"})),
        dict(name="init_h for both h and c", common=True,
             source=_INIT.format(**{**_INIT_GOOD, "c": "torch.tanh(init_h(mean))"})),
    ],
    "09_decoder_step": [
        dict(name="gate missing", common=True,
             source=_STEP.format(**{**_STEP_GOOD, "x": "torch.cat([decoder.embedding(words), context], dim=1)"})),
        dict(name="context before the embedding", common=True, source=_STEP.format(**{
            **_STEP_GOOD, "x": "torch.cat([gate * context, decoder.embedding(words)], dim=1)"})),
        dict(name="dropout also in eval mode", common=True, source=_STEP.format(**{
            **_STEP_GOOD, "logits": "decoder.fc(torch.nn.functional.dropout(h, decoder.dropout.p))"})),
        dict(name="h and c returned swapped", common=True,
             source=_STEP.format(**{**_STEP_GOOD, "result": "logits, c, h, alpha"})),
    ],
    "09_doubly_stochastic": [
        dict(name="alphas of padded steps counted", common=True, hint="padded steps",
             source=_PENALTY.format(**{**_PENALTY_GOOD, "totals": "alphas.sum(dim=1)"})),
        dict(name="mask off by one (counts the step after <end>)", common=True, hint="padded steps",
             source=_PENALTY.format(**{**_PENALTY_GOOD, "bound": "lengths.to(alphas.device)[:, None]"})),
        dict(name="summed over the regions instead of the steps", common=True, hint="uniform",
             source=_PENALTY.format(**{**_PENALTY_GOOD, "totals": "(alphas * real.unsqueeze(2)).sum(dim=2)"})),
        dict(name="wrong sign: (1 + total)^2", common=True,
             source=_PENALTY.format(**{**_PENALTY_GOOD, "result": "((1.0 + totals) ** 2).mean()"})),
        dict(name="summed over the regions (Xu et al.) instead of averaged", common=True,
             source=_PENALTY.format(**{**_PENALTY_GOOD, "result": "((1.0 - totals) ** 2).sum(dim=1).mean()"})),
    ],
    "09_decoder_forward": [
        dict(name="state from the first region instead of the mean", common=True,
             source=_FORWARD.format(**{**_FORWARD_GOOD, "mean": "features[:, 0]"})),
        dict(name="gate missing", common=True, source=_FORWARD.format(**{**_FORWARD_GOOD, "context": "context"})),
        dict(name="dropout also in eval mode", common=True, source=_FORWARD.format(**{
            **_FORWARD_GOOD, "dropout": "torch.nn.functional.dropout(h, 0.5)"})),
        dict(name="no dropout at all", common=True, hint="training mode",
             source=_FORWARD.format(**{**_FORWARD_GOOD, "dropout": "h"})),
        dict(name="rows left in sorted order", common=True, hint="input's order",
             source=_FORWARD.format(**{**_FORWARD_GOOD, "result": "scores, alphas"})),
        dict(name="not sorted: the first n rows are not the running captions", common=True,
             source=_FORWARD.format(**{**_FORWARD_GOOD, "order": "torch.arange(batch)"})),
        dict(name="reads the word it must predict (off by one)", common=True, source=_FORWARD.format(**{
            **_FORWARD_GOOD, "word": "t + 1"})),
        dict(name="state restarted from zero at every step", common=True,
             source=_FORWARD.format(**{**_FORWARD_GOOD, "lstm": "decoder.lstm(x)"})),
        dict(name="whole batch at every step, padded steps not zeroed", common=True, hint="ended", source="""
batch, num_pixels, _ = features.shape
steps = int(lengths.max()) - 1
projected = decoder.attention.project(features)
mean = features.mean(dim=1)
h, c = torch.tanh(decoder.init_h(mean)), torch.tanh(decoder.init_c(mean))
scores, alphas = [], []
for t in range(steps):
    context, alpha = decoder.attention(features, projected, h)
    gate = torch.sigmoid(decoder.gate(h))
    x = torch.cat([decoder.embedding(captions[:, t]), gate * context], dim=1)
    h, c = decoder.lstm(x, (h, c))
    scores.append(decoder.fc(decoder.dropout(h)))
    alphas.append(alpha)
return torch.stack(scores, dim=1), torch.stack(alphas, dim=1)
"""),
    ],
    "09_training_state": [
        dict(name="optimizer state saved but never loaded", common=True, hint="optimizer", block=1,
             source=_LOAD.format(**{**_LOAD_GOOD, "optimizer": "pass"})),
        dict(name="scheduler not restored", common=True, hint="scheduler", block=1,
             source=_LOAD.format(**{**_LOAD_GOOD, "scheduler": "pass"})),
        dict(name="random generator not restored", common=True, hint="random generator", block=1,
             source=_LOAD.format(**{**_LOAD_GOOD, "rng": "pass"})),
        dict(name="epoch off by one", common=True, hint="epochs done", block=1,
             source=_LOAD.format(**{**_LOAD_GOOD, "epoch": 'int(state["epoch"]) + 1'})),
        dict(name="written in place, not atomically", source="""
state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
         "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch}
torch.save(state, path)
"""),
        dict(name="the objects pickled instead of their state dicts", source="""
state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "rng": torch.get_rng_state(), "epoch": epoch}
temporary = f"{path}.tmp"
torch.save(state, temporary)
os.replace(temporary, path)
"""),
    ],
}

"""Wrong answers to the exercises of notebook 03 (see tests/test_mutants.py)."""

NOTEBOOK = "03_neural_networks_and_optimisers.ipynb"

_BACKWARD = """
onehot = F.one_hot(y, z2.shape[1]).to(z2.dtype)
dz2 = {dz2}
dw2, db2 = {dw2}, {db2}
dz1 = {dz1}
dw1, db1 = dz1.T @ x, dz1.sum(dim=0)
return dw1, db1, dw2, db2
"""
_GOOD = dict(dz2="(torch.softmax(z2, dim=1) - onehot) / len(x)", dw2="dz2.T @ h", db2="dz2.sum(dim=0)",
             dz1="(dz2 @ w2) * (z1 > 0).to(z1.dtype)")

_ADAM = """
m = beta1 * m + (1 - beta1) * grad
v = beta2 * v + (1 - beta2) * {square}
m_hat = m / (1 - beta1**{t})
v_hat = v / (1 - beta2**{t})
return param - lr * m_hat / ({root} + eps), {state}
"""
_ADAM_GOOD = dict(square="grad**2", t="t", root="v_hat.sqrt()", state="m, v")

MUTANTS = {
    "03_activations": [
        dict(name="leaky_relu ignores the slope argument", common=True, source="return torch.where(x > 0, x, 0.1 * x)"),
        dict(name="leaky_relu with the branches swapped", common=True,
             source="return torch.where(x > 0, slope * x, x)"),
        dict(name="leaky_relu = relu plus slope x everywhere", common=True, source="return torch.relu(x) + slope * x"),
        dict(name="elu without the clamp (NaN gradient for large x)", common=True, block=1, hint="clamp",
             source="return torch.where(x > 0, x, alpha * (torch.exp(x) - 1))"),
        dict(name="elu with alpha on exp only", common=True, block=1,
             source="return torch.where(x > 0, x, alpha * torch.exp(torch.clamp(x, max=0)) - 1)"),
        dict(name="elu ignores alpha", common=True, block=1,
             source="return torch.where(x > 0, x, torch.exp(torch.clamp(x, max=0)) - 1)"),
    ],
    "03_softmax": [
        dict(name="global max instead of each row's", common=True, hint="each row",
             source="""
e = torch.exp(z - z.max())
return e / e.sum(dim=-1, keepdim=True)
"""),
        dict(name="no max subtracted (overflow)", common=True, hint="overflow", source="""
e = torch.exp(z)
return e / e.sum(dim=-1, keepdim=True)
"""),
        dict(name="normalised over the batch axis", common=True, source="""
e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
return e / e.sum(dim=0, keepdim=True)
"""),
        dict(name="max over the first axis", common=True, source="""
e = torch.exp(z - z.max(dim=0, keepdim=True).values)
return e / e.sum(dim=-1, keepdim=True)
"""),
        dict(name="sum without keepdim (a shape error on a batch)", source="""
e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
return e / e.sum(dim=-1)
"""),
    ],
    "03_cross_entropy": [
        dict(name="p log q gives 0 * log 0 = NaN", common=True, hint="NaN",
             source="return -(p * torch.log(q)).sum(dim=-1)"),
        dict(name="missing minus sign", common=True, source="return torch.xlogy(p, q).sum(dim=-1)"),
        dict(name="sums over the whole batch", source="return -torch.xlogy(p, q).sum()"),
        dict(name="mean over the classes", common=True, source="return -torch.xlogy(p, q).mean(dim=-1)"),
        dict(name="arguments swapped (q log p)", common=True, source="return -torch.xlogy(q, p).sum(dim=-1)"),
    ],
    "03_mlp_backward": [
        dict(name="not divided by the batch size", common=True, source=_BACKWARD.format(**{
            **_GOOD, "dz2": "torch.softmax(z2, dim=1) - onehot"})),
        dict(name="ReLU mask forgotten", common=True, source=_BACKWARD.format(**{**_GOOD, "dz1": "dz2 @ w2"})),
        dict(name="dw2 transposed", common=True, source=_BACKWARD.format(**{**_GOOD, "dw2": "h.T @ dz2"})),
        dict(name="db2 summed over the classes", common=True, source=_BACKWARD.format(**{
            **_GOOD, "db2": "dz2.sum(dim=1)[: dz2.shape[1]].sum() * torch.ones(dz2.shape[1], dtype=dz2.dtype)"})),
        dict(name="sign of the output error flipped", common=True, source=_BACKWARD.format(**{
            **_GOOD, "dz2": "(onehot - torch.softmax(z2, dim=1)) / len(x)"})),
    ],
    "03_adam": [
        dict(name="no bias correction", common=True, source="""
m = beta1 * m + (1 - beta1) * grad
v = beta2 * v + (1 - beta2) * grad**2
return param - lr * m / (v.sqrt() + eps), m, v
"""),
        dict(name="bias correction with t + 1", common=True, source=_ADAM.format(**{**_ADAM_GOOD, "t": "(t + 1)"})),
        dict(name="v averages |grad| instead of grad**2", common=True,
             source=_ADAM.format(**{**_ADAM_GOOD, "square": "grad.abs()"})),
        dict(name="returns the corrected moments as state", common=True,
             source=_ADAM.format(**{**_ADAM_GOOD, "state": "m_hat, v_hat"})),
        dict(name="eps inside the square root", source=_ADAM.format(**{**_ADAM_GOOD, "root": "(v_hat + eps).sqrt()"})),
    ],
}

_TRAIN = """
{mode}
total, count = 0.0, 0
for x, y in loader:
    {zero}
    loss = loss_fn(model(x), y)
    {backward_step}
    total += {weighted}
    count += len(x)
return total / count
"""
_TRAIN_GOOD = dict(mode="model.train()", zero="optimizer.zero_grad()",
                   backward_step="loss.backward()\n    optimizer.step()", weighted="loss.item() * len(x)")

_EVAL = """
{mode}
total, correct, count = 0.0, 0, 0
with {context}:
    for x, y in loader:
        scores = model(x)
        total += loss_fn(scores, y).item() * len(x)
        correct += (scores.argmax(dim={axis}) == y).sum().item()
        count += len(x)
return total / count, correct / count
"""
_EVAL_GOOD = dict(mode="model.eval()", context="torch.no_grad()", axis="1")

MUTANTS["03_training_loop"] = [
    dict(name="zero_grad forgotten", common=True, hint="zero_grad",
         source=_TRAIN.format(**{**_TRAIN_GOOD, "zero": "pass"})),
    dict(name="model.train() forgotten", common=True, hint="model.train()",
         source=_TRAIN.format(**{**_TRAIN_GOOD, "mode": "pass"})),
    dict(name="step before backward", common=True, hint="before optimizer.step()",
         source=_TRAIN.format(**{**_TRAIN_GOOD, "backward_step": "optimizer.step()\n    loss.backward()"})),
    dict(name="mean of the batch means", common=True, hint="weighted",
         source=_TRAIN.format(**{**_TRAIN_GOOD, "weighted": "loss.item() * 4"})),
    dict(name="evaluate in training mode", common=True, block=1, hint="model.eval()",
         source=_EVAL.format(**{**_EVAL_GOOD, "mode": "pass"})),
    dict(name="evaluate with gradients on", common=True, block=1, hint="torch.no_grad()",
         source=_EVAL.format(**{**_EVAL_GOOD, "context": "torch.enable_grad()"})),
    dict(name="accuracy over the wrong axis", block=1, source=_EVAL.format(**{**_EVAL_GOOD, "axis": "0"})),
]

_RMS_STEP = """
for p, s, b in zip(self.params, self.square_avg, self.velocity):
    if p.grad is None:
        continue
    {average}
    d = {direction}
    if self.momentum > 0:
        {velocity}
        d = b
    {update}
"""
_RMS_GOOD = dict(average="s.mul_(self.alpha).add_((1 - self.alpha) * p.grad**2)",
                 direction="p.grad / (s.sqrt() + self.eps)", velocity="b.mul_(self.momentum).add_(d)",
                 update="p.sub_(self.lr * d)")

MUTANTS["03_rmsprop"] = [
    dict(name="eps inside the square root", common=True, block=2, hint="where eps goes",
         source=_RMS_STEP.format(**{**_RMS_GOOD, "direction": "p.grad / (s + self.eps).sqrt()"})),
    dict(name="(1 - alpha) forgotten", common=True, block=2, hint="each term",
         source=_RMS_STEP.format(**{**_RMS_GOOD, "average": "s.mul_(self.alpha).add_(p.grad**2)"})),
    dict(name="running average not kept (s rebound, not updated in place)", common=True, block=2, hint="carries over",
         source=_RMS_STEP.format(**{**_RMS_GOOD, "average": "s = self.alpha * s + (1 - self.alpha) * p.grad**2"})),
    dict(name="momentum on the raw gradient", common=True, block=2, hint="carries over",
         source=_RMS_STEP.format(**{**_RMS_GOOD, "velocity": "b.mul_(self.momentum).add_(p.grad)\n"
                                                             "        b.div_(s.sqrt() + self.eps)"})),
    dict(name="parameter not updated in place", common=True, block=2, hint="in place",
         source=_RMS_STEP.format(**{**_RMS_GOOD, "update": "p = p - self.lr * d"})),
    dict(name="parameters without a gradient not skipped", common=True, block=2, hint="None", source="""
for p, s, b in zip(self.params, self.square_avg, self.velocity):
    s.mul_(self.alpha).add_((1 - self.alpha) * p.grad**2)
    d = p.grad / (s.sqrt() + self.eps)
    if self.momentum > 0:
        b.mul_(self.momentum).add_(d)
        d = b
    p.sub_(self.lr * d)
"""),
    dict(name="zero_grad does nothing (gradients add up)", common=True, hint="zero_grad", block=1, source="pass"),
    dict(name="one running average shared by every parameter", common=True, source="""
self.params = list(params)
self.lr, self.alpha, self.eps, self.momentum = lr, alpha, eps, momentum
self.square_avg = [torch.zeros(())] * len(self.params)
self.velocity = [torch.zeros_like(p) for p in self.params]
"""),
    dict(name="parameters kept as the generator", source="""
self.params = params
self.lr, self.alpha, self.eps, self.momentum = lr, alpha, eps, momentum
self.square_avg = [torch.zeros_like(p) for p in self.params]
self.velocity = [torch.zeros_like(p) for p in self.params]
"""),
]

"""Wrong answers to the exercises of notebook 04 (see tests/test_mutants.py)."""

NOTEBOOK = "04_cnn_classifier.ipynb"

_BUILD = """
layers = []
channels = {channels}
for c_in, c_out in zip(channels, channels[1:]):
    layers += {block}
side = {side}
layers += {head}
return nn.Sequential(*layers)
"""
_BUILD_GOOD = dict(channels="[3, 32, 64, 128]",
                   block="[nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]",
                   side="image_size // 8",
                   head="[nn.Flatten(), nn.Linear(128 * side * side, 128), nn.ReLU(), nn.Dropout(0.5), "
                        "nn.Linear(128, num_classes)]")


def _build(**change):
    return _BUILD.format(**{**_BUILD_GOOD, **change})


_STOP = """
best, waited = float("inf"), 0
for loss in val_losses:
    if {improves}:
        best, waited = {update}
    else:
        waited += 1
return waited {cmp} patience
"""
_STOP_GOOD = dict(improves="loss < best - min_delta", update="loss, 0", cmp=">=")


def _stop(**change):
    return _STOP.format(**{**_STOP_GOOD, **change})


MUTANTS = {
    "04_param_counts": [
        dict(name="convolution bias forgotten", common=True, hint="conv2d_params",
             source="return kernel_size * kernel_size * in_channels * out_channels"),
        dict(name="input channels forgotten", common=True, hint="conv2d_params",
             source="return (kernel_size * kernel_size + 1) * out_channels"),
        dict(name="kernel side not squared", common=True, hint="conv2d_params",
             source="return (kernel_size * in_channels + 1) * out_channels"),
        dict(name="dense bias forgotten", common=True, hint="linear_params", block=1,
             source="return in_features * out_features"),
        dict(name="one bias in all for the dense layer", block=1, source="return in_features * out_features + 1"),
    ],
    "04_build_cnn": [
        dict(name="flatten size for two poolings (image_size // 4)", common=True, hint="flatten size",
             source=_build(side="image_size // 4")),
        dict(name="dropout forgotten", common=True, hint="Dropout",
             source=_build(head="[nn.Flatten(), nn.Linear(128 * side * side, 128), nn.ReLU(), "
                                "nn.Linear(128, num_classes)]")),
        dict(name="last block with 64 filters", common=True, hint="parameter count",
             source=_build(channels="[3, 32, 64, 64]",
                           head="[nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Dropout(0.5), "
                                "nn.Linear(128, num_classes)]")),
        dict(name="no padding (the maps shrink by 2 at each convolution)", common=True, hint="flatten size",
             source=_build(block="[nn.Conv2d(c_in, c_out, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2)]")),
        dict(name="dropout before the ReLU", source=_build(
             head="[nn.Flatten(), nn.Linear(128 * side * side, 128), nn.Dropout(0.5), nn.ReLU(), "
                  "nn.Linear(128, num_classes)]")),
        dict(name="pooling before the ReLU", source=_build(
             block="[nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.MaxPool2d(2), nn.ReLU()]")),
    ],
    "04_should_stop": [
        dict(name="patience off by one (waited > patience)", common=True, hint="two epochs without improvement",
             source=_stop(cmp=">")),
        dict(name="counter not restarted after an improvement", common=True, hint="restarts",
             source=_stop(update="loss, waited")),
        dict(name="an equal loss counts as an improvement", source=_stop(improves="loss <= best - min_delta")),
        dict(name="compares with the previous loss instead of the best", source="""
best, waited = float("inf"), 0
for loss in val_losses:
    if loss < best - min_delta:
        waited = 0
    else:
        waited += 1
    best = loss
return waited >= patience
"""),
        dict(name="min_delta added the wrong way", source=_stop(improves="loss < best + min_delta")),
    ],
}

_FIT = """
loss_fn = nn.CrossEntropyLoss()
history = {{"train_loss": [], "val_loss": [], "val_acc": []}}
best_loss, best_state, waited = float("inf"), None, 0
{seed}
{train_once}
for _ in range(epochs):
    {train_mode}
    total, count = 0.0, 0
    for images, labels in train_loader:
        {zero}
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        total, count = total + {train_weighted}, count + len(labels)
    {eval_mode}
    val_total, correct, val_count = 0.0, 0, 0
    with {context}:
        for images, labels in val_loader:
            logits = model(images)
            val_total += {val_weighted}
            correct += (logits.argmax(dim=1) == labels).sum().item()
            val_count += len(labels)
    history["train_loss"].append({train_mean})
    history["val_loss"].append({val_mean})
    history["val_acc"].append(correct / val_count)
    if history["val_loss"][-1] {better} best_loss:
        best_loss, waited = history["val_loss"][-1], {reset}
        best_state = {save}
    else:
        waited += 1
        if waited {stop_cmp} patience:
            break
{restore}
return history
"""
_FIT_GOOD = dict(seed="", train_once="", train_mode="model.train()", zero="optimizer.zero_grad()",
                 train_weighted="loss.item() * len(labels)", eval_mode="model.eval()", context="torch.no_grad()",
                 val_weighted="loss_fn(logits, labels).item() * len(labels)", better="<", reset="0",
                 save="copy.deepcopy(model.state_dict())", train_mean="total / count", val_mean="val_total / val_count",
                 stop_cmp=">=", restore="model.load_state_dict(best_state)")


def _fit(**change):
    return _FIT.format(**{**_FIT_GOOD, **change})


MUTANTS["04_fit"] = [
    dict(name="zero_grad forgotten", common=True, hint="zero_grad", source=_fit(zero="pass")),
    dict(name="validates in training mode", common=True, hint="model.eval()", source=_fit(eval_mode="pass")),
    dict(name="model.train() only once, before the loop", common=True, hint="model.train()",
         source=_fit(train_mode="pass", train_once="model.train()")),
    dict(name="validates with gradients on", common=True, hint="torch.no_grad()",
         source=_fit(context="torch.enable_grad()")),
    dict(name="best weights not loaded back", common=True, hint="best weights", source=_fit(restore="pass")),
    dict(name="best weights kept by reference (state_dict() without a copy)", common=True, hint="best weights",
         source=_fit(save="model.state_dict()")),
    dict(name="patience off by one (waited > patience)", common=True, hint="patience", source=_fit(stop_cmp=">")),
    dict(name="counter not restarted on improvement", source=_fit(reset="waited")),
    dict(name="validation loss = mean of the batch means", source=_fit(
         val_weighted="loss_fn(logits, labels).item()", val_mean="val_total / len(val_loader)")),
    dict(name="training loss = mean of the batch means", source=_fit(
         train_weighted="loss.item()", train_mean="total / len(train_loader)")),
    dict(name="reseeds inside the loop (ignores the caller's seed)", source=_fit(seed="torch.manual_seed(0)")),
]

_INIT = """
self.convs, self.norms = {lists}
c_in = 3
for c_out in widths:
    self.convs.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
    self.norms.append(nn.BatchNorm2d(c_out))
    c_in = c_out
self.pool = nn.MaxPool2d(2)
self.dropout = nn.Dropout({rate})
self.head = nn.Linear({head_in}, num_classes)
"""
_GOOD_INIT = dict(lists="nn.ModuleList(), nn.ModuleList()", rate="dropout", head_in="c_in")
_FORWARD = """
x = images
for conv, norm in zip(self.convs, self.norms):
    x = self.pool({block})
x = {pool}
return {out}
"""
_GOOD_FORWARD = dict(block="torch.relu(norm(conv(x)))", pool="x.mean(dim=(2, 3))", out="self.head(self.dropout(x))")


def _init(**change):
    return _INIT.format(**{**_GOOD_INIT, **change})


def _forward(**change):
    return _FORWARD.format(**{**_GOOD_FORWARD, **change})


MUTANTS["04_compact_cnn"] = [
    dict(name="layers in plain Python lists (not registered)", common=True, hint="nn.ModuleList",
         source=_init(lists="[], []")),
    dict(name="dropout rate ignored (fixed 0.5)", common=True, hint="dropout argument", source=_init(rate="0.5")),
    dict(name="flatten instead of global average pooling (over budget at 128 px)", common=True,
         hint="global average pooling",
         source=_init(head_in="c_in * 16 * 16")),
    dict(name="squeeze breaks a batch of one", common=True, hint="batch of one", block=1,
         source=_forward(pool="x.mean(dim=(2, 3), keepdim=True).squeeze()")),
    dict(name="functional dropout left on in eval mode", common=True, hint="eval mode", block=1,
         source=_forward(out="self.head(nn.functional.dropout(x, 0.3))")),
    dict(name="batch norm skipped in forward", block=1, source=_forward(block="torch.relu(conv(x))")),
    dict(name="dropout after the dense layer", block=1, source=_forward(out="self.dropout(self.head(x))")),
]

_SCORES = """
y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
if y_true.shape != y_pred.shape or y_true.ndim != 1:
    raise ValueError("two label arrays of one length")
labels = np.concatenate([y_true, y_pred])
if {range_check}:
    raise ValueError("labels out of range")
cm = np.zeros((num_classes, num_classes), dtype=np.int64)
for t, p in zip(y_true, y_pred):
    {count}
tp = np.diag(cm).astype(float)
predicted, actual = {sums}
{pr}
{f1}
return cm, precision, recall, f1
"""
_GOOD = dict(range_check="labels.size and (labels.min() < 0 or labels.max() >= num_classes)", count="cm[t, p] += 1",
             sums="cm.sum(axis=0), cm.sum(axis=1)",
             pr="precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)\n"
                "recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)",
             f1="both = precision + recall\n"
                "f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)")


def _scores(**change):
    return _SCORES.format(**{**_GOOD, **change})


MUTANTS["04_precision_recall"] = [
    dict(name="confusion matrix transposed (row = prediction)", common=True, hint="row = true class",
         source=_scores(count="cm[p, t] += 1")),
    dict(name="precision and recall swapped (wrong axis of the sums)", common=True, hint="precision",
         source=_scores(sums="cm.sum(axis=1), cm.sum(axis=0)")),
    dict(name="0 / 0 not handled (NaN for a class never predicted)", common=True, hint="NaN",
         source=_scores(pr="precision = tp / predicted\nrecall = tp / actual")),
    dict(name="F1 as the arithmetic mean", common=True, hint="f1",
         source=_scores(f1="f1 = (precision + recall) / 2")),
    dict(name="F1 with 0 / 0 not handled", common=True, hint="NaN",
         source=_scores(f1="f1 = 2 * precision * recall / (precision + recall)")),
    dict(name="negative labels accepted (counted in the last class)", common=True, hint="ValueError",
         source=_scores(range_check="labels.size and labels.max() >= num_classes")),
    dict(name="counts set instead of added (cm[t, p] = 1)", source=_scores(count="cm[t, p] = 1")),
]

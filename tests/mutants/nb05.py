"""Wrong answers to the exercises of notebook 05 (see tests/test_mutants.py)."""

NOTEBOOK = "05_transfer_learning.ipynb"

_INPUT = """
x = torch.as_tensor(np.asarray(image)).{layout}.float(){scale}
x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias={antialias}, align_corners=False)
mean = torch.tensor({mean}).view(1, 3, 1, 1)
std = torch.tensor({std}).view(1, 3, 1, 1)
return {out}
"""
_INPUT_GOOD = dict(layout="permute(2, 0, 1)", scale=" / 255", antialias="True", mean="IMAGENET_MEAN",
                   std="IMAGENET_STD", out="(x - mean) / std")

_FREEZE = """
for p in {frozen}:
    p.requires_grad = False
{head}
trainable = {count_trainable}
frozen = {count_frozen}
return trainable, frozen
"""
_FREEZE_GOOD = dict(frozen="model.blocks.parameters()",
                    head="for p in model.fc.parameters():\n    p.requires_grad = True",
                    count_trainable="sum(p.numel() for p in model.parameters() if p.requires_grad)",
                    count_frozen="sum(p.numel() for p in model.parameters() if not p.requires_grad)")

_TOP = """
blocks = list(model.blocks)
frozen, top = {split}
for p in model.parameters():
    p.requires_grad = {freeze}
for module in [*top, model.fc]:
    for p in module.parameters():
        p.requires_grad = True
optimizer = torch.optim.Adam([
    {{"params": [p for block in top for p in block.parameters()], "lr": {top_lr}}},
    {head_group}
])
device = next(model.parameters()).device
losses = []
{before_loop}
for images, labels in batches:
    {train}
    {zero_grad}
    loss = F.cross_entropy(model(images.to(device)), labels.to(device))
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
return optimizer, losses
"""
_TOP_GOOD = dict(split="blocks[: len(blocks) - num_top], blocks[len(blocks) - num_top:]", freeze="False",
                 top_lr="lr * backbone_lr_factor", head_group='{"params": list(model.fc.parameters()), "lr": lr},',
                 before_loop="", train="model.train()\n    for block in frozen:\n        block.eval()",
                 zero_grad="optimizer.zero_grad()")

_CAM = """
batch = image if image.ndim == 4 else image[None]
was_training = model.training
{eval}
with torch.no_grad():
    maps = model.feature_maps(batch.to(model.fc.weight.device))[0]
    scores = model.fc(maps.mean(dim=(1, 2)))
{restore}
if {default}:
    class_idx = int(scores.argmax())
weights = model.fc.weight[class_idx].detach()
cam = {weighted}
{early}
cam = F.interpolate(cam[None, None], size={size}, mode="bilinear", align_corners=False)[0, 0]
cam = {relu}
if cam.max() > 0:
    cam = {normalise}
return cam.cpu(), class_idx
"""
_CAM_GOOD = dict(eval="model.eval()", restore="model.train(was_training)", default="class_idx is None",
                 weighted="(weights[:, None, None] * maps).sum(dim=0)", early="", size="tuple(batch.shape[-2:])",
                 relu="cam.clamp(min=0)", normalise="cam / cam.max()")

_TOPK = """
probs = torch.as_tensor(probs)
{check}
values, indices = {order}
return [(class_names[{name}], {value}) for rank, (v, i) in enumerate(zip(values[:k].tolist(), indices[:k].tolist()))]
"""
_TOPK_CHECK = """if probs.ndim != 1 or len(probs) != len(class_names):
    raise ValueError("one probability per class")
if k < 1:
    raise ValueError("k >= 1")"""
_TOPK_GOOD = dict(check=_TOPK_CHECK, order="probs.sort(descending=True, stable=True)", name="i", value="float(v)")

MUTANTS = {
    "05_imagenet_input": [
        dict(name="values not divided by 255", common=True, hint="255",
             source=_INPUT.format(**{**_INPUT_GOOD, "scale": ""})),
        dict(name="mean and standard deviation swapped", common=True,
             source=_INPUT.format(**{**_INPUT_GOOD, "out": "(x - std) / mean"})),
        dict(name="channels reshaped instead of permuted", common=True, source=_INPUT.format(**{
            **_INPUT_GOOD, "layout": "reshape(image.shape[2], image.shape[0], image.shape[1])"})),
        dict(name="the image's own mean and std instead of ImageNet's", common=True,
             source=_INPUT.format(**{**_INPUT_GOOD, "out": "(x - x.mean()) / (x.std() + 1e-8)"})),
        dict(name="channel statistics in BGR order", common=True,
             source=_INPUT.format(**{**_INPUT_GOOD, "mean": "IMAGENET_MEAN[::-1]", "std": "IMAGENET_STD[::-1]"})),
        dict(name="shrunk without antialiasing", source=_INPUT.format(**{**_INPUT_GOOD, "antialias": "False"})),
    ],
    "05_freeze": [
        dict(name="freezes the head too", common=True,
             source=_FREEZE.format(**{**_FREEZE_GOOD, "frozen": "model.parameters()", "head": ""})),
        dict(name="counts parameter tensors, not weights", common=True, source=_FREEZE.format(**{
            **_FREEZE_GOOD, "count_trainable": "len([p for p in model.parameters() if p.requires_grad])",
            "count_frozen": "len([p for p in model.parameters() if not p.requires_grad])"})),
        dict(name="only convolution weights frozen (batch norm still trains)", common=True,
             source=_FREEZE.format(**{**_FREEZE_GOOD, "frozen": "(m.weight for m in model.blocks.modules() "
                                                                 "if isinstance(m, nn.Conv2d))"})),
        dict(name="frozen = every weight", common=True,
             source=_FREEZE.format(**{**_FREEZE_GOOD, "count_frozen": "sum(p.numel() for p in model.parameters())"})),
        dict(name="a frozen head is not made trainable again", source=_FREEZE.format(**{**_FREEZE_GOOD, "head": ""})),
    ],
    "05_fine_tune_top": [
        dict(name="unfreezes everything", common=True, hint="freeze",
             source=_TOP.format(**{**_TOP_GOOD, "freeze": "True"})),
        dict(name="frozen batch norms left in training mode", common=True, hint="eval mode",
             source=_TOP.format(**{**_TOP_GOOD, "train": "model.train()"})),
        dict(name="frozen blocks put in eval mode before model.train()", common=True, hint="after model.train()",
             source=_TOP.format(**{**_TOP_GOOD, "before_loop": "for block in frozen:\n    block.eval()",
                                   "train": "model.train()"})),
        dict(name="one learning rate for both groups", common=True, hint="backbone_lr_factor",
             source=_TOP.format(**{**_TOP_GOOD, "top_lr": "lr"})),
        dict(name="the head left out of the optimizer", common=True, hint="not in the optimizer",
             source=_TOP.format(**{**_TOP_GOOD, "head_group": ""})),
        dict(name="gradients never zeroed", source=_TOP.format(**{**_TOP_GOOD, "zero_grad": "pass"})),
        dict(name="blocks[-num_top:] (num_top=0 unfreezes every block)",
             source=_TOP.format(**{**_TOP_GOOD, "split": "blocks[:-num_top], blocks[-num_top:]"})),
        dict(name="the whole model in eval mode (top batch norms never learn)",
             source=_TOP.format(**{**_TOP_GOOD, "train": "model.eval()\n    model.fc.train()"})),
    ],
    "05_cam": [
        dict(name="always the predicted class", common=True, hint="class_idx",
             source=_CAM.format(**{**_CAM_GOOD, "default": "True"})),
        dict(name="no ReLU", common=True, hint="ReLU", source=_CAM.format(**{**_CAM_GOOD, "relu": "cam"})),
        dict(name="not normalised", common=True, hint="normalise",
             source=_CAM.format(**{**_CAM_GOOD, "normalise": "cam"})),
        dict(name="channels summed without the class weights", common=True,
             source=_CAM.format(**{**_CAM_GOOD, "weighted": "maps.sum(dim=0)"})),
        dict(name="computed in training mode", common=True, hint="eval mode",
             source=_CAM.format(**{**_CAM_GOOD, "eval": "pass"})),
        dict(name="the model left in eval mode", common=True, hint="training mode",
             source=_CAM.format(**{**_CAM_GOOD, "restore": "pass"})),
        dict(name="upsampled to (W, H)", common=True, hint="upsampled",
             source=_CAM.format(**{**_CAM_GOOD, "size": "(batch.shape[-1], batch.shape[-2])"})),
        dict(name="divided by the max even when it is zero",
             source=_CAM.format(**{**_CAM_GOOD, "normalise": "cam / cam.max()", "relu": "cam.clamp(min=0)"})
             .replace("if cam.max() > 0:\n    cam = cam / cam.max()", "cam = cam / cam.max()")),
        dict(name="ReLU and normalisation before upsampling",
             source=_CAM.format(**{**_CAM_GOOD, "early": "cam = cam.clamp(min=0)\ncam = cam / cam.max()"})),
    ],
    "05_top_k": [
        dict(name="sorted ascending", common=True,
             source=_TOPK.format(**{**_TOPK_GOOD, "order": "probs.sort(stable=True)"})),
        dict(name="ascending sort reversed (ties in reverse order)", common=True, hint="lower index",
             source=_TOPK.format(**{**_TOPK_GOOD, "order": "(probs.sort(stable=True)[0].flip(0), "
                                                           "probs.sort(stable=True)[1].flip(0))"})),
        dict(name="probabilities left as tensors", common=True, hint="float",
             source=_TOPK.format(**{**_TOPK_GOOD, "value": "torch.tensor(v)"})),
        dict(name="names taken by rank, not by class index", common=True,
             source=_TOPK.format(**{**_TOPK_GOOD, "name": "rank"})),
        dict(name="no ValueError for bad arguments", common=True, hint="ValueError",
             source=_TOPK.format(**{**_TOPK_GOOD, "check": ""})),
    ],
}

"""The classifier project report's pipeline: split, transforms, models, early stopping, metrics, data sources."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support
from torch.utils.data import DataLoader, TensorDataset

import course_utils.vision.image_data as image_data
from course_utils.vision.architectures import count_parameters
from course_utils.vision.classify import classification_report, confusion, predict, train_classifier
from course_utils.vision.cnn import CompactCNN, SmallCNN
from course_utils.vision.early_stopping import EarlyStopping, should_stop
from course_utils.vision.image_data import (
    ArrayDataset,
    ImageSet,
    image_transforms,
    load_image_folder,
    load_image_set,
    make_loaders,
    split_indices,
)


def test_split_is_70_15_15_stratified_and_disjoint():
    labels = np.repeat(np.arange(4), 100)
    split = split_indices(labels, seed=1)
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == {"train": 280, "val": 60, "test": 60}
    joined = np.concatenate(list(split.values()))
    assert len(np.unique(joined)) == len(labels)
    for idx in split.values():
        assert np.all(np.bincount(labels[idx]) == len(idx) // 4)  # every class in the same share
    assert all(np.array_equal(a, b) for a, b in zip(split.values(), split_indices(labels, seed=1).values()))


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="fractions"):
        split_indices(np.zeros(10, dtype=int), fractions=(0.8, 0.3, 0.1))


def test_transforms_accept_tensors_and_pil_images():
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    for train in (True, False):
        tf = image_transforms(32, train)
        out = tf(torch.from_numpy(image).permute(2, 0, 1))
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert tf(Image.fromarray(image)).shape == (3, 32, 32)
    normed = image_transforms(32, False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))(Image.fromarray(image))
    assert normed.min() < 0


def test_small_cnn_shapes_and_layers():
    model = SmallCNN(num_classes=5, image_size=32)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    kinds = [type(m).__name__ for m in model.modules()]
    assert kinds.count("Conv2d") == 3 and kinds.count("MaxPool2d") == 3
    assert kinds.count("Linear") == 2 and kinds.count("Dropout") == 1
    probs = model.predict_proba(torch.zeros(3, 3, 32, 32))
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="divisible by 8"):
        SmallCNN(5, image_size=30)


def test_compact_cnn_head_does_not_grow_with_the_image():
    torch.manual_seed(0)
    model = CompactCNN(num_classes=10).eval()
    assert count_parameters(model) == 24_458  # against 4,288,970 for SmallCNN(10, 128)
    kinds = [type(m).__name__ for m in model.modules()]
    assert [kinds.count(k) for k in ("Conv2d", "BatchNorm2d", "MaxPool2d", "Dropout", "Linear")] == [3, 3, 3, 1, 1]
    images = torch.rand(4, 3, 128, 128)
    logits = model(images)
    assert logits.shape == (4, 10) and model(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    torch.testing.assert_close(model(images[:1]), logits[:1])  # eval mode: alone or in a batch, the same answer
    model.train()
    assert not torch.equal(model(images), model(images))  # dropout in train mode


@pytest.mark.parametrize(
    "losses,patience,expected",
    [([1.0, 0.9, 0.8], 2, False), ([1.0, 0.9, 0.95, 0.97], 2, True), ([1.0, 1.0], 1, True), ([], 1, False),
     ([1.0, 0.99, 0.98], 2, False)],
)
def test_should_stop(losses, patience, expected):
    assert should_stop(losses, patience) is expected


def test_should_stop_min_delta():
    assert should_stop([1.0, 0.99, 0.98], patience=2, min_delta=0.05)


def test_early_stopping_restores_best_weights():
    model = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert not stopper.step(0.5, model)
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert stopper.step(0.7, model)
    stopper.restore(model)
    assert torch.all(model.weight == 1.0) and stopper.best_epoch == 1


def _bright_dark(n=40, size=16):
    """Two trivially separable classes: dark and bright images (N, size, size, 3) uint8."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    images = (rng.integers(0, 60, (n, size, size, 3)) + labels[:, None, None, None] * 190).astype(np.uint8)
    return images, labels


def test_train_classifier_learns_and_predict_evaluates():
    torch.manual_seed(0)
    images, labels = _bright_dark()
    data = ImageSet(images, labels, ["dark", "bright"], "test")
    split = split_indices(labels)
    loaders = make_loaders(data, split, image_size=16, batch_size=8)
    model = SmallCNN(2, image_size=16, widths=(4, 8, 8), hidden=8, dropout=0.0)
    history = train_classifier(model, loaders["train"], loaders["val"], epochs=6, lr=1e-2, patience=10, verbose=False)
    assert set(history) == {"train_loss", "val_loss", "train_acc", "val_acc", "seconds"}
    assert len(history["val_loss"]) == 6
    y_true, probs = predict(model, loaders["test"])
    assert probs.shape == (len(split["test"]), 2)
    assert (probs.argmax(1) == y_true).mean() == 1.0


def test_train_classifier_stops_early():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 2, (16,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    model = SmallCNN(2, image_size=8, widths=(2, 2, 2), hidden=2)
    # lr too high: the loss diverges and early stopping ends the run
    history = train_classifier(model, loader, loader, epochs=50, lr=0.5, patience=2, verbose=False)
    assert len(history["val_loss"]) < 50


def test_report_and_confusion_match_sklearn():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 0, 0])  # class 2 never predicted
    table = classification_report(y_true, y_pred, ["a", "b", "c"])
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose(table.loc[["a", "b", "c"], "precision"], p)
    np.testing.assert_allclose(table.loc[["a", "b", "c"], "f1"], f)
    assert table.loc["c", "precision"] == 0.0 and table.loc["macro avg", "support"] == 7
    cm = confusion(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [3, 0, 0]]


def test_array_dataset_checks_lengths():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        ArrayDataset(np.zeros((3, 4, 4, 3), np.uint8), np.zeros(2))
    x, y = ArrayDataset(np.full((1, 4, 4, 3), 255, np.uint8), np.array([1]))[0]
    assert x.shape == (3, 4, 4) and float(x.max()) == 1.0 and y == 1


def test_image_folder_source_skips_and_counts_bad_files(tmp_path):
    for cls, value in (("cats", 30), ("dogs", 220)):
        (tmp_path / cls).mkdir()
        for i in range(4):
            Image.fromarray(np.full((20, 30, 3), value, np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    data = load_image_folder(tmp_path, image_size=16, per_class=10)
    assert data.class_names == ["cats", "dogs"]
    assert data.images.shape == (8, 16, 16, 3) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [4, 4]
    assert len(data.notes) == 1 and "skipped 1 unreadable" in data.notes[0] and "broken.png" in data.notes[0]
    capped = load_image_folder(tmp_path, image_size=16, per_class=2)
    assert np.bincount(capped.labels).tolist() == [2, 2]


def test_unavailable_sources_fall_back_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(image_data, "reachable", lambda *a, **k: False)
    data = load_image_set("cifar10", image_size=16, per_class=2, data_root=tmp_path)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "cifar10" in lines[0] and "synthetic shapes" in lines[0]
    assert data.source == "shapes" and data.images.shape[1:] == (16, 16, 3)
    monkeypatch.setattr(image_data, "KAGGLE_INPUT", tmp_path / "no_kaggle")
    assert load_image_set("sports", image_size=16, per_class=2).source == "shapes"
    assert load_image_set(str(tmp_path / "missing"), image_size=16, per_class=2).source == "shapes"


def test_sports_folder_is_found_under_kaggle_input(tmp_path, monkeypatch):
    train = tmp_path / "sports-classification" / "train" / "archery"
    train.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(train / f"{i}.jpg")
    assert image_data.find_sports_folder(tmp_path) == tmp_path / "sports-classification" / "train"
    monkeypatch.setattr(image_data, "KAGGLE_INPUT", tmp_path)
    data = load_image_set("sports", image_size=8, per_class=5)
    assert data.class_names == ["archery"] and len(data) == 3

"""prepare_caption_data: the shared setup of chapters 08-10, on synthetic and on (tiny) real data."""

import random

import pytest
import torch
from PIL import Image

from course_utils.caption_data.datasets import CaptionDataset
from course_utils.caption_data.formats import load_dataset
from course_utils.captioning.encoders import build_encoder
from course_utils.captioning.prepare import GRID, SPLITS, SYNTH_IMAGE_SIZE, prepare_caption_data, subsample
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary
from course_utils.vision import pretrained

WORDS = ["a", "dog", "cat", "man", "runs", "sits", "on", "the", "grass", "bench", "red", "ball"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:  # offline: no hub cache, torchvision's host unreachable
        mp.setattr(torch.hub, "get_dir", lambda: str(root / "hub"))
        mp.setattr(pretrained, "reachable", lambda *a, **k: False)
        return root, prepare_caption_data(root, fast=True, dataset="synth", lang="fr", synth_images=24)


def test_synthetic_data_goes_through_the_frozen_pretrained_encoder(synthetic):
    root, prepared = synthetic
    assert prepared.folder == root / "synth_fr" and prepared.synthetic
    assert len(prepared.data.captions) == 24 and (prepared.folder / "boxes.json").is_file()
    # the vocabulary of the training split only, words seen at least twice
    tokens = [tokenize(c) for k in prepared.data.images("train") for c in prepared.data.captions[k]]
    assert prepared.train_tokens == tokens
    assert prepared.vocab.itos == Vocabulary.build(tokens, min_freq=2).itos
    # offline, ResNet-50's weights are missing: the bundled ImageNet network, frozen, as on real data
    setting = (prepared.encoder, prepared.image_size, prepared.grid, prepared.encoder_dim)
    assert setting == ("efficientnet_lite0", SYNTH_IMAGE_SIZE, GRID, prepared.backbone.encoder_dim)
    assert prepared.backbone.weights.startswith("ImageNet")
    assert not any(p.requires_grad for p in prepared.backbone.parameters())
    assert set(prepared.caches) == set(SPLITS)
    for split in SPLITS:
        cache = prepared.caches[split]
        assert cache.is_built() and len(cache) == len(prepared.data.images(split))
        assert cache.array.shape[1:] == (GRID * GRID, prepared.encoder_dim)
    lines = prepared.summary()
    assert len(lines) == 3 and lines[2].startswith(f"encoder: efficientnet_lite0 (frozen, ImageNet), {GRID} x {GRID}")


def test_synthetic_inputs_and_encoder_config(synthetic):
    _, prepared = synthetic
    inputs = prepared.inputs_for("val")
    assert inputs == {"features": prepared.caches["val"]}
    features, caption = CaptionDataset(prepared.data, "val", prepared.vocab, **inputs)[0][:2]
    assert tuple(features.shape) == (GRID * GRID, prepared.encoder_dim) and features.dtype == torch.float32
    config = prepared.encoder_config()
    assert config["encoder"] is None and config["feature_encoder"] == "efficientnet_lite0"
    assert config["trained_on"].startswith("synthetic shapes")


def test_same_folder_reused_and_no_inputs(synthetic):
    root, first = synthetic
    again = prepare_caption_data(root, fast=True, dataset="auto", lang="fr", synth_images=24, build_inputs=False)
    assert again.folder == first.folder and again.data.captions == first.data.captions  # no flickr8k: synthetic
    assert again.vocab.itos == first.vocab.itos and not again.caches


def test_subsample_keeps_a_regular_sample(synthetic):
    data = synthetic[1].data
    assert subsample(data, None) is data and subsample(data, 24) is data
    small = subsample(data, 5)
    assert list(small.captions) == data.images()[::4][:5]
    assert set(small.split) == set(small.captions)


def fake_flickr8k(folder, n_images):
    """A Kaggle-format Flickr8k: Images/*.jpg and captions.txt (5 captions per image)."""
    rng = random.Random(0)
    (folder / "Images").mkdir(parents=True)
    lines = ["image,caption"]
    for i in range(n_images):
        name = f"{1000268201 + 7919 * i}_{i:010x}.jpg"
        Image.new("RGB", (40, 30), (rng.randrange(256), rng.randrange(256), 90)).save(folder / "Images" / name)
        lines += [f"{name},{' '.join(rng.choices(WORDS, k=6))} ." for _ in range(5)]
    (folder / "captions.txt").write_text("\n".join(lines) + "\n")


def test_real_dataset_with_feature_caches(tmp_path):
    fake_flickr8k(tmp_path / "flickr8k", 40)
    full = load_dataset(tmp_path / "flickr8k")
    assert all(full.images(s) for s in SPLITS), "the fake dataset needs images in every split"
    backbone = build_encoder("mobilenet_v2", grid=7, weights=None)  # small, no download
    prepared = prepare_caption_data(tmp_path, fast=True, synth_images=10, backbone=backbone)
    assert prepared.folder == tmp_path / "flickr8k" and not prepared.synthetic
    assert not (tmp_path / "synth_en").exists()
    assert list(prepared.data.captions) == full.images()[::4][:10]  # fast mode: a regular sample
    setting = (prepared.encoder, prepared.image_size, prepared.grid, prepared.encoder_dim)
    assert setting == ("mobilenet_v2", 224, 7, 1280)
    assert set(prepared.caches) == set(SPLITS) and prepared.backbone is backbone
    key = prepared.data.images("train")[0]
    assert prepared.caches["train"][key].shape == (49, 1280)
    inputs = prepared.inputs_for("train")
    assert inputs == {"features": prepared.caches["train"]}
    features, caption = CaptionDataset(prepared.data, "train", prepared.vocab, **inputs)[0][:2]
    assert tuple(features.shape) == (49, 1280)
    assert prepared.encoder_config() == dict(
        encoder=None, encoder_dim=1280, feature_encoder="mobilenet_v2", grid=7, image_size=224,
        trained_on="flickr8k photos",
    )
    assert prepared.summary()[2] == "encoder: mobilenet_v2 (frozen, ImageNet), 7 x 7 = 49 regions of 1280 numbers, " \
        "images of 224 px"


def test_real_dataset_full_mode_keeps_every_image(tmp_path):
    fake_flickr8k(tmp_path / "flickr8k", 12)
    prepared = prepare_caption_data(tmp_path, fast=False, dataset="flickr8k", build_inputs=False)
    assert len(prepared.data.captions) == 12 and not prepared.synthetic
    assert (prepared.encoder, prepared.image_size, prepared.grid, prepared.encoder_dim) == ("resnet50", 224, 7, 2048)
    assert prepared.encoder_config()["feature_encoder"] == "resnet50" and prepared.backbone is None

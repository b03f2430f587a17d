"""prepare_caption_data: the shared setup of chapters 08-10, on synthetic and on (tiny) real data."""

import random

import pytest
import torch
from PIL import Image

from course_utils.caption_data.datasets import CaptionDataset
from course_utils.caption_data.formats import load_dataset
from course_utils.captioning.encoders import build_encoder
from course_utils.captioning.prepare import SPLITS, prepare_caption_data, subsample
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary

WORDS = ["a", "dog", "cat", "man", "runs", "sits", "on", "the", "grass", "bench", "red", "ball"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, prepare_caption_data(root, fast=True, dataset="synth", lang="fr", synth_images=24)


def test_synthetic_data_vocab_and_stores(synthetic):
    root, prepared = synthetic
    assert prepared.folder == root / "synth_fr" and prepared.synthetic
    assert len(prepared.data.captions) == 24 and (prepared.folder / "boxes.json").is_file()
    # the vocabulary of the training split only, words seen at least twice
    tokens = [tokenize(c) for k in prepared.data.images("train") for c in prepared.data.captions[k]]
    assert prepared.train_tokens == tokens
    assert prepared.vocab.itos == Vocabulary.build(tokens, min_freq=2).itos
    assert (prepared.encoder, prepared.image_size, prepared.grid) == ("small_cnn", 64, 8)
    assert set(prepared.stores) == set(SPLITS) and not prepared.caches and prepared.backbone is None
    for split in SPLITS:
        store = prepared.stores[split]
        assert store.is_built() and len(store) == len(prepared.data.images(split))
        assert store.array.shape[1:] == (64, 64, 3)
    lines = prepared.summary()
    assert len(lines) == 3 and lines[2] == "encoder: small_cnn, 8 x 8 = 64 regions, images of 64 px"


def test_synthetic_inputs_and_encoder_config(synthetic):
    _, prepared = synthetic
    inputs = prepared.inputs_for("val")
    assert set(inputs) == {"transform", "store"} and inputs["store"] is prepared.stores["val"]
    image, caption = CaptionDataset(prepared.data, "val", prepared.vocab, **inputs)[0][:2]
    assert tuple(image.shape) == (3, 64, 64) and image.dtype == torch.float32
    assert prepared.encoder_config() == dict(encoder="small_cnn", grid=8, channels=[16, 32, 64, 128], image_size=64)


def test_same_folder_reused_and_no_inputs(synthetic):
    root, first = synthetic
    again = prepare_caption_data(root, fast=True, dataset="auto", lang="fr", synth_images=24, build_inputs=False)
    assert again.folder == first.folder and again.data.captions == first.data.captions  # no flickr8k: synthetic
    assert again.vocab.itos == first.vocab.itos and not again.stores and not again.caches


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
    assert set(prepared.caches) == set(SPLITS) and not prepared.stores and prepared.backbone is backbone
    key = prepared.data.images("train")[0]
    assert prepared.caches["train"][key].shape == (49, 1280)
    inputs = prepared.inputs_for("train")
    assert inputs == {"features": prepared.caches["train"]}
    features, caption = CaptionDataset(prepared.data, "train", prepared.vocab, **inputs)[0][:2]
    assert tuple(features.shape) == (49, 1280)
    assert prepared.encoder_config() == dict(
        encoder=None, encoder_dim=1280, feature_encoder="mobilenet_v2", grid=7, image_size=224
    )
    assert prepared.summary()[2] == "encoder: mobilenet_v2, 7 x 7 = 49 regions, images of 224 px"


def test_real_dataset_full_mode_keeps_every_image(tmp_path):
    fake_flickr8k(tmp_path / "flickr8k", 12)
    prepared = prepare_caption_data(tmp_path, fast=False, dataset="flickr8k", build_inputs=False)
    assert len(prepared.data.captions) == 12 and not prepared.synthetic
    assert (prepared.encoder, prepared.image_size, prepared.grid, prepared.encoder_dim) == ("resnet50", 224, 7, 2048)
    assert prepared.encoder_config()["feature_encoder"] == "resnet50" and prepared.backbone is None

"""Feature cache and image store: computed once, reused, never stale."""

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils.caption_data.cache import FeatureCache, ImageStore, dataset_fingerprint
from course_utils.caption_data.formats import load_dataset
from course_utils.caption_data.synth import generate
from course_utils.vision.image_io import eval_transform, load_image


class CountingEncoder(torch.nn.Module):
    """A tiny conv encoder returning a (batch, 8, 4, 4) map; counts the images it sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.seen = 0

    def forward(self, images):
        self.seen += len(images)
        return self.pool(self.conv(images))


@pytest.fixture()
def data(tmp_path):
    return load_dataset(generate(tmp_path / "synth", n_images=20, image_size=32))


def test_build_once_then_reuse(tmp_path, data, capsys):
    enc = CountingEncoder()
    cache = FeatureCache(tmp_path / "cache", data, "train", "tiny", image_size=32).build(enc, progress=False)
    assert enc.seen == 16 and len(cache) == 16
    key = data.images("train")[3]
    assert cache[key].shape == (16, 8) and cache[key].dtype == np.float32
    with torch.no_grad():
        direct = enc(eval_transform(32)(load_image(data.image_path(key)))[None]).flatten(2).transpose(1, 2)[0]
    assert np.allclose(cache[key], direct.numpy(), atol=2e-3)  # float16 on disk
    stored = np.load(cache.array_path)[cache.row[key]]  # (16, 8) float16
    assert np.array_equal(cache[key], stored.astype(np.float32))  # converted exactly, by torch
    again = FeatureCache(tmp_path / "cache", data, "train", "tiny", image_size=32).build(enc, progress=False)
    assert enc.seen == 17  # only the direct call above: the cache was reused
    assert "reusing" in capsys.readouterr().out
    assert np.array_equal(again[key], cache[key])
    assert enc.training  # build() restores the mode


def test_key_depends_on_encoder_size_and_split(tmp_path, data):
    a = FeatureCache(tmp_path, data, "train", "tiny", 32)
    assert a.dir != FeatureCache(tmp_path, data, "train", "other", 32).dir
    assert a.dir != FeatureCache(tmp_path, data, "train", "tiny", 64).dir
    assert a.dir != FeatureCache(tmp_path, data, "val", "tiny", 32).dir


def test_changed_dataset_invalidates(tmp_path, data, capsys):
    enc = CountingEncoder()
    FeatureCache(tmp_path / "cache", data, "val", "tiny", 32).build(enc, progress=False)
    key = data.images("val")[0]
    Image.new("RGB", (32, 32), (1, 2, 3)).save(data.image_path(key), quality=50)  # the image changes on disk
    changed = FeatureCache(tmp_path / "cache", data, "val", "tiny", 32)
    assert not changed.is_built()
    changed.build(enc, progress=False)
    assert enc.seen == 4
    assert "ignoring stale cache" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 2


def test_unfinished_cache_is_not_used(tmp_path, data):
    cache = FeatureCache(tmp_path, data, "val", "tiny", 32)
    cache.dir.mkdir(parents=True)
    np.save(cache.array_path, np.zeros((2, 16, 8), dtype=np.float16))  # no meta.json: interrupted
    assert not cache.is_built()
    with pytest.raises(FileNotFoundError, match="no finished features cache"):
        cache.load()
    cache.build(CountingEncoder(), progress=False)
    assert cache.is_built() and cache.array.shape == (2, 16, 8)
    with pytest.raises(KeyError, match="not in this cache"):
        cache["nope.jpg"]


def test_fingerprint_follows_file_sizes(data):
    keys = data.images("val")
    before = dataset_fingerprint(data, keys)
    assert before == dataset_fingerprint(data, keys)
    with open(data.image_path(keys[0]), "ab") as f:
        f.write(b"\0")
    assert dataset_fingerprint(data, keys) != before


def test_image_store(tmp_path, data):
    store = ImageStore(tmp_path, data, "val", size=24).build(progress=False)
    key = data.images("val")[1]
    assert store[key].shape == (24, 24, 3) and store[key].dtype == np.uint8
    expected = np.asarray(load_image(data.image_path(key)).resize((24, 24), Image.BILINEAR))
    assert np.array_equal(store[key], expected)
    assert ImageStore(tmp_path, data, "val", size=24).is_built()


def test_other_encoder_weights_rebuild_the_cache(tmp_path, data, capsys):
    random_weights = CountingEncoder()
    cache = FeatureCache(tmp_path, data, "val", "tiny", 32).build(random_weights, progress=False)
    key = data.images("val")[0]
    before = cache[key]
    pretrained = CountingEncoder()
    with torch.no_grad():
        pretrained.conv.weight.mul_(2.0)  # "the ImageNet weights arrived": same name, other weights
    rebuilt = FeatureCache(tmp_path, data, "val", "tiny", 32).build(pretrained, progress=False)
    assert pretrained.seen == 2 and "other encoder weights" in capsys.readouterr().out
    assert not np.allclose(rebuilt[key], before)
    FeatureCache(tmp_path, data, "val", "tiny", 32).build(pretrained, progress=False)
    assert pretrained.seen == 2 and "reusing" in capsys.readouterr().out


@pytest.mark.slow
def test_build_and_read_with_spawned_workers(tmp_path, data):
    """Spawned workers unpickle everything they get: no lambda, and a loaded cache without its array."""
    import pickle

    from torch.utils.data import DataLoader

    from course_utils.caption_data.datasets import CaptionDataset, collate_captions
    from course_utils.sequence.text import tokenize
    from course_utils.sequence.vocab import Vocabulary

    enc = CountingEncoder()
    spawned = FeatureCache(tmp_path / "a", data, "train", "tiny", 32).build(
        enc, progress=False, num_workers=2, batch_size=4, multiprocessing_context="spawn")
    inline = FeatureCache(tmp_path / "b", data, "train", "tiny", 32).build(enc, progress=False, num_workers=0)
    assert np.array_equal(np.load(spawned.array_path), np.load(inline.array_path))
    copy = pickle.loads(pickle.dumps(spawned))  # what a spawned worker receives
    assert spawned.array is not None and copy.array is None  # the file name travels, not the rows
    key = data.images("train")[0]
    assert np.array_equal(copy[key], spawned[key])
    vocab = Vocabulary.build([tokenize(c) for k in data.images("train") for c in data.captions[k]], min_freq=1)
    dataset = CaptionDataset(data, "train", vocab, features=spawned)
    loader = DataLoader(dataset, batch_size=8, num_workers=1, multiprocessing_context="spawn",
                        collate_fn=collate_captions)  # fmt: skip
    features = next(iter(loader))[0]  # (8, 16, 8)
    assert features.shape == (8, 16, 8)

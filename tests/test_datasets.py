"""Datasets of (image, caption) pairs and of images with all references; padding collate."""

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_utils.caption_data.datasets import CaptionDataset, EvalDataset, collate_captions, collate_eval, pad_captions
from course_utils.caption_data.formats import load_dataset
from course_utils.caption_data.synth import generate
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary
from course_utils.vision.image_io import eval_transform


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_dataset(generate(tmp_path_factory.mktemp("d") / "synth", n_images=20, image_size=32))


@pytest.fixture(scope="module")
def vocab(data):
    return Vocabulary.build([tokenize(c) for k in data.images("train") for c in data.captions[k]], min_freq=1)


def test_caption_dataset_items(data, vocab):
    ds = CaptionDataset(data, "train", vocab, transform=eval_transform(32))
    assert len(ds) == 16 * 5
    image, caption = ds[7]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert caption.dtype == torch.long and caption[0] == vocab.start_id and caption[-1] == vocab.end_id
    key = data.images("train")[7 // 5]
    assert vocab.decode(caption) == tokenize(data.captions[key][7 % 5])


def test_max_len_truncates(data, vocab):
    ds = CaptionDataset(data, "train", vocab, transform=eval_transform(32), max_len=3)
    assert max(len(ids) for _, ids in ds.pairs) == 5  # <start> + 3 + <end>


def test_collate_pads_with_zero_and_returns_lengths(data, vocab):
    ds = CaptionDataset(data, "train", vocab, transform=eval_transform(32))
    images, captions, lengths = next(iter(DataLoader(ds, batch_size=6, collate_fn=collate_captions)))
    assert images.shape == (6, 3, 32, 32)
    assert captions.shape == (6, int(lengths.max())) and lengths.dtype == torch.long
    for row, n in zip(captions, lengths):
        assert row[n - 1] == vocab.end_id and (row[n:] == 0).all() and (row[:n] != 0).all()


def test_pad_captions():
    padded, lengths = pad_captions([torch.tensor([1, 5, 2]), torch.tensor([1, 2])])
    assert padded.tolist() == [[1, 5, 2], [1, 2, 0]] and lengths.tolist() == [3, 2]


def test_eval_dataset_and_collate(data):
    ds = EvalDataset(data, "val", transform=eval_transform(32))
    assert len(ds) == 2
    image, refs, key = ds[1]
    assert key == data.images("val")[1] and refs == [tokenize(c) for c in data.captions[key]]
    images, references, keys = collate_eval([ds[0], ds[1]])
    assert images.shape == (2, 3, 32, 32) and len(references) == 2 and len(references[0]) == 5 and len(keys) == 2


def test_features_and_store_sources(data, vocab):
    feats = {k: np.full((4, 3), i, dtype=np.float16) for i, k in enumerate(data.images("test"))}
    ds = CaptionDataset(data, "test", vocab, features=feats)
    x, _ = ds[5]
    assert x.shape == (4, 3) and x.dtype == torch.float32 and (x == 1).all()
    store = {k: np.zeros((32, 32, 3), dtype=np.uint8) for k in data.images("test")}
    y, _, _ = EvalDataset(data, "test", transform=eval_transform(32), store=store)[0]
    assert y.shape == (3, 32, 32)


def test_empty_split_is_an_error(data, vocab):
    all_train = dataclasses.replace(data, split={k: "train" for k in data.captions})
    with pytest.raises(ValueError, match="the 'val' split holds no image"):
        CaptionDataset(all_train, "val", vocab)
    with pytest.raises(ValueError, match="split must be one of"):
        EvalDataset(data, "dev")


def test_length_bucket_sampler_batches_similar_lengths_and_changes_every_epoch():
    from torch.utils.data import BatchSampler, RandomSampler

    from course_utils.caption_data.datasets import LengthBucketSampler

    lengths = torch.randint(3, 25, (203,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = LengthBucketSampler(lengths, batch_size=8, pool=5, generator=torch.Generator().manual_seed(1))
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 26  # ceil(203 / 8)
    assert sorted(i for batch in first for i in batch) == list(range(203))
    assert sum(len(b) < 8 for b in first) == 1  # only the very last batch is smaller
    assert first != second
    pad = lambda batches: sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)  # noqa: E731
    random_batches = list(BatchSampler(RandomSampler(lengths, generator=torch.Generator().manual_seed(1)), 8, False))
    assert pad(first) < 0.3 * pad(random_batches)
    again = LengthBucketSampler(lengths, 8, 5, generator=torch.Generator().manual_seed(1))
    assert list(again) == first  # the generator decides everything
    with pytest.raises(ValueError):
        LengthBucketSampler(lengths, 0)


def test_length_bucket_sampler_feeds_a_dataloader():
    from course_utils.caption_data.datasets import LengthBucketSampler

    items = [(torch.zeros(2), torch.arange(1, n + 1)) for n in [5, 3, 8, 2, 2, 7, 1, 9, 4, 4, 6]]
    sampler = LengthBucketSampler([len(c) for _, c in items], 3, generator=torch.Generator().manual_seed(0))
    batches = list(DataLoader(items, batch_sampler=sampler, collate_fn=collate_captions))
    assert len(batches) == 4
    assert sum(captions.numel() - lengths.sum().item() for _, captions, lengths in batches) == 6

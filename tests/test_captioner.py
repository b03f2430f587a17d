"""The captioner's config: a dataclass, stored as a dict, read back strictly."""

import pytest
import torch

from course_utils.captioning.attention import ShowAttendTell
from course_utils.captioning.captioner import CaptionerConfig, build_captioner
from course_utils.captioning.show_tell import ShowTell
from course_utils.cli.demo import model_config as demo_config


def test_missing_keys_take_the_dataclass_defaults():
    model = build_captioner({"vocab_size": 30, "embed_dim": 8, "attention_dim": 8, "encoder_dim": 12})
    assert isinstance(model.decoder, ShowAttendTell) and model.encoder is None and model.concepts is None
    assert model.config == CaptionerConfig(vocab_size=30, embed_dim=8, attention_dim=8, encoder_dim=12)
    assert model.decoder.hidden_dim == 256  # hidden_dim=None: the decoder's own size
    tell = build_captioner({"vocab_size": 30, "decoder": "show_tell", "embed_dim": 8, "encoder_dim": 12})
    assert isinstance(tell.decoder, ShowTell) and tell.decoder.hidden_dim == 512


def test_unknown_or_missing_required_keys_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^config: unknown key\(s\) 'hiden_dim'$"):
        build_captioner({"vocab_size": 30, "hiden_dim": 64})
    with pytest.raises(ValueError, match="'vocab_size' is missing"):
        build_captioner({"decoder": "attention"})
    with pytest.raises(ValueError, match="decoder 'transformer' is unknown"):
        build_captioner({"vocab_size": 30, "decoder": "transformer"})


def test_stored_dict_rebuilds_the_same_model():
    torch.manual_seed(0)
    model = build_captioner(CaptionerConfig(vocab_size=25, encoder="small_cnn", grid=4, channels=[4, 8, 8],
                                            embed_dim=8, hidden_dim=16, attention_dim=8, concepts=True))
    stored = model.config.to_dict()  # what a checkpoint holds: plain values only
    assert all(isinstance(v, (int, float, str, list, type(None))) for v in stored.values())
    again = build_captioner(stored)
    again.load_state_dict(model.state_dict())  # every weight has the same name and shape
    assert again.config == model.config


def test_the_configs_written_by_the_kit_still_load():
    """The demo's config (what checkpoints of the main branch hold) uses only known names."""
    from types import SimpleNamespace

    encoder = SimpleNamespace(name="efficientnet_lite0:blocks.4", encoder_dim=112, grid=7)  # what the demo caches
    config = demo_config(40, encoder, "en")
    model = build_captioner(config | {"encoder_weights": None})
    assert model.config.image_size == config["image_size"] and model.config.trained_on == config["trained_on"]

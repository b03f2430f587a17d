"""The caption app of notebook 10: build it, pick an example, simulate an upload (good and
corrupt), move the beam slider, and check the caption and the attention it shows."""

import datetime
import io

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils.apps.caption_app import caption_app, read_upload
from course_utils.apps.upload import simulate_upload  # a browser upload, ipywidgets 7 or 8
from course_utils.captioning.captioner import build_captioner
from course_utils.captioning.inference import caption_images
from course_utils.sequence.vocab import Vocabulary

PNG_MAGIC = b"\x89PNG"
GRID = 4
MAX_LEN = 5


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(list(Vocabulary.SPECIALS) + ["red", "circle", "square"])


def make_model(vocab, decoder="attention", word="red"):
    """A tiny untrained captioner whose decoder always prefers ``word``: the caption is
    known in advance (``word`` repeated ``MAX_LEN`` times, never ``<end>``)."""
    torch.manual_seed(0)
    config = dict(decoder=decoder, vocab_size=len(vocab), encoder="small_cnn", grid=GRID, channels=(8, 16),
                  embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0)
    model = build_captioner(config).eval()
    with torch.no_grad():
        model.decoder.fc.bias.zero_()
        model.decoder.fc.bias[vocab.stoi[word]] = 50.0
    return model


def png_bytes(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def examples(tmp_path):
    paths = {}
    for name, colour in (("red.png", (220, 20, 20)), ("blue.jpg", (20, 20, 220))):
        path = tmp_path / name
        Image.new("RGB", (48, 48), colour).save(path)
        paths[name] = path
    return paths


def upload_value(name: str, content: bytes) -> tuple:
    """What ipywidgets 8's FileUpload holds after a browser upload."""
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)  # fmt: skip


def test_app_captions_the_first_example_on_start(vocab, examples):
    app = caption_app(make_model(vocab), vocab, examples, image_size=32, max_len=MAX_LEN)
    assert app.result["source"] == "red.png"
    assert app.result["words"] == ["red"] * MAX_LEN
    alphas = app.result["alphas"]
    assert tuple(alphas.shape) == (MAX_LEN, GRID * GRID)
    np.testing.assert_allclose(alphas.sum(dim=1).numpy(), 1.0, atol=1e-5)
    assert "red red red red red" in app.caption.value and "greedy" in app.caption.value
    assert bytes(app.view.value).startswith(PNG_MAGIC)


def test_app_captions_an_upload(vocab, examples):
    app = caption_app(make_model(vocab, word="circle"), vocab, examples, image_size=32, max_len=MAX_LEN)
    before = bytes(app.view.value)
    simulate_upload(app.controls["upload"], "my photo.png", png_bytes())
    assert app.result["source"] == "my photo.png"
    assert app.result["words"] == ["circle"] * MAX_LEN
    assert tuple(app.result["alphas"].shape) == (MAX_LEN, GRID * GRID)
    assert "my photo.png" in app.caption.value
    assert bytes(app.view.value).startswith(PNG_MAGIC)
    assert bytes(app.view.value) != before  # another image, another figure


def test_app_reports_a_corrupt_upload_and_keeps_working(vocab, examples):
    app = caption_app(make_model(vocab), vocab, examples, image_size=32, max_len=MAX_LEN)
    simulate_upload(app.controls["upload"], "broken.png", b"this is not a PNG file")
    assert app.result is None
    assert "error" in app.caption.value and "broken.png" in app.caption.value
    app.controls["example"].value = "blue.jpg"  # the app still works afterwards
    assert app.result["source"] == "blue.jpg" and app.result["words"] == ["red"] * MAX_LEN


def test_beam_slider_recaptions_with_beam_search(vocab, examples):
    app = caption_app(make_model(vocab), vocab, examples, image_size=32, max_len=MAX_LEN)
    app.controls["beam"].value = 3
    assert app.result["beam_size"] == 3
    assert "beam size 3" in app.caption.value
    assert app.result["words"] == ["red"] * MAX_LEN  # a decoder this sure of itself: beam agrees with greedy
    assert tuple(app.result["alphas"].shape) == (MAX_LEN, GRID * GRID)


def test_app_without_examples_waits_for_an_upload(vocab):
    app = caption_app(make_model(vocab), vocab, [], image_size=32, max_len=MAX_LEN)
    assert app.result is None and "upload an image" in app.caption.value
    simulate_upload(app.controls["upload"], "x.png", png_bytes())
    assert app.result["words"] == ["red"] * MAX_LEN


def test_show_and_tell_model_has_no_attention_but_still_captions(vocab, examples):
    app = caption_app(make_model(vocab, decoder="show_tell"), vocab, examples, image_size=32, max_len=MAX_LEN)
    assert app.result["alphas"] is None
    assert app.result["words"] == ["red"] * MAX_LEN
    assert bytes(app.view.value).startswith(PNG_MAGIC)


def test_model_reading_cached_features_is_refused(vocab):
    model = build_captioner(dict(decoder="attention", vocab_size=len(vocab), encoder_dim=16, embed_dim=8,
                                 hidden_dim=16, attention_dim=8))  # fmt: skip
    with pytest.raises(ValueError, match="image encoder"):
        caption_app(model, vocab, [])


def test_caption_images_beam_one_equals_greedy(vocab):
    model = make_model(vocab)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0, 1.0)
    from course_utils.vision.image_io import eval_transform

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    result = caption_images(model, vocab, [image], eval_transform(32), beam_size=1, max_len=MAX_LEN)[0]
    words, alphas = result.words, result.alphas
    assert all(w in vocab.itos for w in words) and len(words) <= MAX_LEN
    assert alphas is None or tuple(alphas.shape) == (len(words), GRID * GRID)


def test_read_upload_accepts_both_ipywidgets_formats():
    data = png_bytes()
    assert read_upload(upload_value("a.png", data)) == [("a.png", data)]
    assert read_upload({"b.png": {"metadata": {"name": "b.png"}, "content": data}}) == [("b.png", data)]  # ipywidgets 7
    assert read_upload(()) == []


def test_app_says_what_the_model_was_trained_on(vocab, examples):
    note = "synthetic shapes: photos get shape words; train on Flickr8k for photos"
    app = caption_app(make_model(vocab), vocab, examples, image_size=32, max_len=MAX_LEN, trained_on=note)
    assert app.trained_on.value == f"<i>model trained on {note}</i>" and app.trained_on in app.children
    assert caption_app(make_model(vocab), vocab, examples, image_size=32, max_len=MAX_LEN).trained_on.value == ""

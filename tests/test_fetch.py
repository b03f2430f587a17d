"""Locating (Kaggle), downloading with resume, safe extraction, and the offline line."""

import io
import socket
import tarfile
import urllib.error
import zipfile

import pytest

from course_utils.caption_data import fetch as F
from course_utils.caption_data.synth import generate


class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes, status: int, headers: dict):
        super().__init__(body)
        self.status, self.headers = status, headers


def fake_server(payload: bytes, honour_range: bool = True):
    """An ``urlopen`` double serving ``payload``, with HTTP Range support; records the requests."""
    seen = []

    def opener(request, timeout=None):
        rng = request.get_header("Range")
        seen.append(rng)
        if rng and honour_range:
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(payload):
                raise urllib.error.HTTPError(request.full_url, 416, "Range Not Satisfiable", {}, None)
            body = payload[start:]
            return FakeResponse(body, 206, {"Content-Length": str(len(body))})
        return FakeResponse(payload, 200, {"Content-Length": str(len(payload))})

    opener.seen = seen
    return opener


PAYLOAD = bytes(range(256)) * 40


def test_download_and_resume(tmp_path):
    dest = tmp_path / "file.zip"
    (tmp_path / "file.zip.part").write_bytes(PAYLOAD[:1000])  # an interrupted earlier download
    opener = fake_server(PAYLOAD)
    F.download("http://example.invalid/file.zip", dest, opener=opener, progress=False)
    assert dest.read_bytes() == PAYLOAD and opener.seen == ["bytes=1000-"]
    assert not (tmp_path / "file.zip.part").exists()
    F.download("http://example.invalid/file.zip", dest, opener=opener, progress=False)
    assert len(opener.seen) == 1  # already there: nothing requested


def test_server_ignoring_range_restarts(tmp_path):
    (tmp_path / "f.part").write_bytes(b"garbage")
    dest = tmp_path / "f"
    F.download("http://example.invalid/f", dest, opener=fake_server(PAYLOAD, honour_range=False), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_short_download_is_kept_for_resume(tmp_path):
    def short(request, timeout=None):
        return FakeResponse(PAYLOAD[:100], 200, {"Content-Length": str(len(PAYLOAD))})

    with pytest.raises(F.FetchError, match="got 100 bytes, expected 10240; run again to resume"):
        F.download("http://example.invalid/f", tmp_path / "f", opener=short, progress=False)
    assert (tmp_path / "f.part").stat().st_size == 100 and not (tmp_path / "f").exists()


def test_offline_is_one_clear_line(tmp_path):
    with socket.socket() as s:  # a local port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(F.FetchError) as err:
        F.download(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", timeout=5, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"cannot reach 127.0.0.1:{port}") and "offline?" in msg


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_extract_refuses_escaping_paths(tmp_path):
    target = tmp_path / "target"
    for bad in ("../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"):
        archive = _zip(tmp_path / "bad.zip", {"fine.txt": "x", bad: "boom"})
        with pytest.raises(F.FetchError, match="would be written outside the target folder"):
            F.extract(archive, target)
        assert not (tmp_path / "evil.txt").exists()
        assert list(target.iterdir()) == []  # nothing written, not even the fine member


def test_extract_refuses_tar_links(tmp_path):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as t:
        info = tarfile.TarInfo("data/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    with pytest.raises(F.FetchError, match="is a link or a device"):
        F.extract(archive, tmp_path / "t")


def test_extract_zip_and_tar(tmp_path):
    F.extract(_zip(tmp_path / "a.zip", {"d/one.txt": "1", "two.txt": "2"}), tmp_path / "out")
    assert (tmp_path / "out/d/one.txt").read_text() == "1" and (tmp_path / "out/two.txt").read_text() == "2"
    tgz = tmp_path / "b.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(tmp_path / "out/d/one.txt", arcname="e/one.txt")
    F.extract(tgz, tmp_path / "out")
    assert (tmp_path / "out/e/one.txt").read_text() == "1"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d", "e", "two.txt"]  # no staging left
    (tmp_path / "junk.zip").write_bytes(b"not an archive")
    with pytest.raises(F.FetchError, match="junk.zip: not a zip or tar archive"):
        F.extract(tmp_path / "junk.zip", tmp_path / "out")


def test_locate_under_kaggle_input(tmp_path):
    root = tmp_path / "input"
    (root / "flickr-image-dataset/flickr30k_images").mkdir(parents=True)
    (root / "flickr-image-dataset/flickr30k_images/results.csv").write_text(
        "image_name| comment_number| comment\n1.jpg| 0| A dog .\n"
    )
    (root / "flickr8k").mkdir()
    (root / "flickr8k/captions.txt").write_text("image,caption\n1.jpg,A dog .\n")
    assert F.locate("flickr30k", [root]) == root / "flickr-image-dataset/flickr30k_images"
    assert F.locate("flickr8k", [root]) == root / "flickr8k"
    assert F.locate("coco2017", [root]) is None
    assert F.locate("flickr8k", [tmp_path / "absent"]) is None


def _synth_zip(tmp_path):
    folder = generate(tmp_path / "src" / "flickr8k_like", n_images=12, image_size=32)
    (folder / "synth_meta.json").unlink()  # make it look like a downloaded Kaggle Flickr8k
    archive = tmp_path / "flickr8k.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    return archive.read_bytes()


def test_fetch_downloads_extracts_and_verifies(tmp_path):
    opener = fake_server(_synth_zip(tmp_path))
    folder = F.fetch("flickr8k", tmp_path / "root", opener=opener, urls={"flickr8k": ["http://x.invalid/f8.zip"]},
                     progress=False)  # fmt: skip
    assert folder == tmp_path / "root/flickr8k" and (folder / "captions.txt").is_file()
    assert len(list((folder / "Images").iterdir())) == 12
    with pytest.raises(F.FetchError, match="no direct download for 'flickr30k'.*hsankesara/flickr-image-dataset"):
        F.fetch("flickr30k", tmp_path / "root")


def test_get_dataset_offline_prints_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(F, "KAGGLE_INPUT", tmp_path / "no_kaggle")

    def offline(request, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    assert F.get_dataset("flickr8k", tmp_path, allow_download=True, opener=offline) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "cannot reach github.com" in out[0] and "synthetic dataset" in out[0]
    assert F.get_dataset("flickr8k", tmp_path, allow_download=False) is None
    assert "not found" in capsys.readouterr().out


def test_locate_finds_the_lemma_token_file_and_skips_lfs_pointers(tmp_path):
    root = tmp_path / "input"
    (root / "f8k_lemma").mkdir(parents=True)
    (root / "f8k_lemma/Flickr8k.lemma.token.txt").write_text("1.jpg#0\tA dog run .\n")
    assert F.locate("flickr8k", [root]) == root / "f8k_lemma"
    pointer = tmp_path / "lfs" / "flickr8k"
    pointer.mkdir(parents=True)
    (pointer / "captions.txt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 3\n")
    assert F.locate("flickr8k", [tmp_path / "lfs"]) is None  # a pointer is not the dataset
    with pytest.raises(F.FetchError, match="this is a Git LFS pointer, not the data"):
        F.verify(pointer)

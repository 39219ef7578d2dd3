"""The anonymise command: names, sizes, frame rates and frame counts survive; bad input is refused."""
import numpy as np
import pytest
from PIL import Image

from helpers import anonymise
from helpers.models import build_filter


@pytest.fixture(scope="module")
def filter_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("filter") / "filter.keras"
    build_filter().save(path)
    return path


def _image(path, size=(40, 30), mode="RGB"):
    rng = np.random.default_rng(len(str(path)))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def _video(path, frames=12, fps=7.5, size=(64, 48)):
    import cv2
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def test_images_folders_and_videos_keep_names_sizes_and_frames(tmp_path, filter_file):
    src = tmp_path / "in"
    (src / "cam" / "day2").mkdir(parents=True)
    a = _image(src / "a.png", (40, 30))
    b = _image(src / "b.jpg", (33, 21), mode="L")
    _image(src / "cam" / "f1.png", (20, 20))
    _image(src / "cam" / "day2" / "f2.png", (24, 16))
    avi = _video(src / "clip.avi", frames=12, fps=7.5)
    mp4 = _video(src / "clip2.mp4", frames=5, fps=25.0, size=(32, 32))
    out = tmp_path / "out"
    code = anonymise.main([str(a), str(b), str(src / "cam"), str(avi), str(mp4), "--filter", str(filter_file),
                           "--out", str(out), "--quiet"])
    assert code == 0
    assert Image.open(out / "a.png").size == (40, 30)
    assert Image.open(out / "b.jpg").size == (33, 21)
    assert Image.open(out / "cam" / "f1.png").size == (20, 20)
    assert Image.open(out / "cam" / "day2" / "f2.png").size == (24, 16)
    for name, frames, fps, size in (("clip.avi", 12, 7.5, (64, 48)), ("clip2.mp4", 5, 25.0, (32, 32))):
        info = anonymise.video_info(out / name)
        assert info["frames"] == frames
        assert info["fps"] == pytest.approx(fps, rel=1e-3)
        assert (info["width"], info["height"]) == size
    # the filter really ran: a random filter's output is far from the noisy input
    assert np.abs(np.asarray(Image.open(out / "a.png"), float) - np.asarray(Image.open(a), float)).mean() > 20


def test_bad_inputs_are_refused_with_the_file_named(tmp_path, filter_file, capsys):
    good = _image(tmp_path / "good.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [(broken, "broken.png"), (text, "notes.txt"), (tmp_path / "missing.jpg", "missing.jpg"),
             (empty, "empty")]
    for bad, name in cases:
        out = tmp_path / "out"
        code = anonymise.main([str(good), str(bad), "--filter", str(filter_file), "--out", str(out), "--quiet"])
        assert code == 2
        assert name in capsys.readouterr().err
        assert not (out / "good.png").exists()  # nothing is written before every input is known good
    broken_video = tmp_path / "broken.mp4"
    broken_video.write_bytes(b"\x00" * 100)
    with pytest.raises(anonymise.InputError, match="broken.mp4"):
        anonymise.run(filter_file, [broken_video], tmp_path / "out", show_progress=False)


def test_inputs_are_never_overwritten(tmp_path, filter_file):
    good = _image(tmp_path / "good.png")
    before = good.read_bytes()
    with pytest.raises(anonymise.InputError, match="never overwritten"):
        anonymise.plan([good], tmp_path)
    code = anonymise.main([str(good), "--filter", str(filter_file), "--out", str(tmp_path), "--quiet"])
    assert code == 2 and good.read_bytes() == before
    other = tmp_path / "x"
    other.mkdir()
    _image(other / "good.png")
    with pytest.raises(anonymise.InputError, match="both be written"):
        anonymise.plan([good, other / "good.png"], tmp_path / "out")


def test_missing_filter_names_the_notebook(tmp_path):
    good = _image(tmp_path / "good.png")
    code = anonymise.main([str(good), "--filter", str(tmp_path / "nope.keras"), "--out", str(tmp_path / "o"),
                           "--quiet"])
    assert code == 2


def _bad_inputs(tmp_path):
    """(name, make(path) -> input path) for every kind of bad input the command must refuse cleanly."""
    def empty(p):
        p.write_bytes(b"")
        return p

    def truncated(p):
        data = _image(tmp_path / "whole.png", (64, 64)).read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p

    def corrupt_jpeg(p):
        _image(p, (64, 64))
        data = bytearray(p.read_bytes())
        data[2:40] = b"\x00" * 38
        p.write_bytes(bytes(data))
        return p

    def huge(p):
        Image.new("L", (10_000, 10_000)).save(p)
        return p

    def empty_video(p):
        p.write_bytes(b"")
        return p

    def text_video(p):
        p.write_text("not a video")
        return p

    return [("empty.png", empty), ("truncated.png", truncated), ("corrupt.jpg", corrupt_jpeg),
            ("huge 10000.png", huge), ("empty.mp4", empty_video), ("text.avi", text_video)]


def test_a_sweep_of_bad_inputs_gives_one_message_exit_2_and_writes_nothing(tmp_path, filter_file, capsys):
    good = _image(tmp_path / "good ü.png")
    tried = 0
    for name, make in _bad_inputs(tmp_path):
        bad = make(tmp_path / name)
        before = bad.read_bytes()
        out = tmp_path / f"out-{tried}"
        code = anonymise.main([str(good), str(bad), "--filter", str(filter_file), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, name
        assert name in err and err.count("error:") == 1 and "Traceback" not in err, err
        assert not out.exists() or not any(out.iterdir()), name  # nothing written, not even a partial file
        assert bad.read_bytes() == before  # no input touched
        tried += 1
    assert tried == 6


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "I;16"])
def test_grey_palette_alpha_and_16_bit_images_are_read_as_rgb(tmp_path, mode):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    path = tmp_path / f"x {mode.replace(';', '')}.png"
    if mode == "I;16":
        grey = rng.integers(0, 65536, (12, 10), dtype=np.uint16)
        Image.fromarray(grey).save(path)
        image = anonymise.read_image(path)
        np.testing.assert_allclose(image[..., 0], grey / 65535.0, atol=1e-6)  # scaled, not clipped at 255
    else:
        Image.fromarray(rgb).convert(mode).save(path)
        image = anonymise.read_image(path)
    assert image.shape == (12, 10, 3) and image.dtype == np.float32 and 0 <= image.min() <= image.max() <= 1


def test_a_file_that_is_not_a_filter_is_refused(tmp_path, capsys):
    import keras
    good = _image(tmp_path / "good.png")
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("hello")
    inputs = keras.Input((None, None, 3))
    other_shape = tmp_path / "grey.keras"
    keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs)).save(other_shape)
    for filt, says in ((not_a_model, "not a filter saved by notebook 04"), (other_shape, "not a filter")):
        out = tmp_path / "out"
        assert anonymise.main([str(good), "--filter", str(filt), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert filt.name in err and says in err and not out.exists()


def test_an_unwritable_folder_or_a_full_disk_stops_cleanly(tmp_path, filter_file, monkeypatch, capsys):
    import tempfile
    good = _image(tmp_path / "good.png")
    second = _image(tmp_path / "second.png")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:  # the tests run as root, so permissions are simulated
        m.setattr(tempfile, "NamedTemporaryFile", refuse)
        assert anonymise.main([str(good), "--filter", str(filter_file), "--out", str(tmp_path / "ro"), "--quiet"]) == 2
        assert "cannot write here" in capsys.readouterr().err
    saved = []
    real_save = Image.Image.save

    def full_disk(self, fp, *args, **kwargs):
        if saved:  # the first image fits, the second fills the disk halfway through
            with open(fp, "wb") as f:
                f.write(b"half")
            raise OSError(28, "No space left on device")
        saved.append(fp)
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    out = tmp_path / "full"
    assert anonymise.main([str(good), str(second), "--filter", str(filter_file), "--out", str(out), "--quiet"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # whole files only, no partial one


def test_a_video_whose_frames_change_size_is_refused_without_output(tmp_path, filter_file, monkeypatch):
    video = _video(tmp_path / "clip ü.avi", frames=6)
    real_open = anonymise.open_video

    class Shrinking:
        def __init__(self, capture):
            self.capture, self.n = capture, 0

        def read(self):
            ok, frame = self.capture.read()
            self.n += 1
            return ok, (frame[:20, :20] if ok and self.n > 3 else frame)

        def __getattr__(self, name):
            return getattr(self.capture, name)

    monkeypatch.setattr(anonymise, "open_video", lambda p: Shrinking(real_open(p)))
    with pytest.raises(anonymise.InputError, match="frame 4 is 20x20"):
        anonymise.run(filter_file, [video], tmp_path / "out", show_progress=False)
    assert not any((tmp_path / "out").iterdir())

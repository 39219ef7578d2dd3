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

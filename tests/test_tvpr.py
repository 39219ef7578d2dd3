"""Reading, checking and preparing TVPR-shaped raw data (helpers/tvpr.py) on tiny raw folders made here."""
import json
import sys
from collections import defaultdict

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import tvpr
from helpers.tvpr import AnnotationError

H, W = 64, 80  # tiny frames; TVPR's are 480 x 640
SHARED = ("v1", 20)  # person 2 also walks through person 6's first frame


def colour(person: int) -> tuple:
    rng = np.random.default_rng(person)
    return tuple(int(c) for c in rng.integers(40, 216, size=3))


def make_raw(root, people=12, videos=4, stills=6, avi=()):
    """A raw folder: person p walks in video v{(p-1) % videos}, drawn as a solid square of their colour.

    Person 1 has two extra stills (prepare picks 6); person 2 is also annotated in person 6's first frame.
    Videos named in `avi` are written as MJPG .avi files instead of frame folders.
    """
    root.mkdir(parents=True)
    frames = defaultdict(list)  # (video, frame) -> boxes
    for p in range(1, people + 1):
        video = f"v{(p - 1) % videos}"
        size = 16 + (p % 3) * 4
        for k in range(stills + (2 if p == 1 else 0)):
            frame = ((p - 1) // videos) * 20 + 2 * k
            x, y = (7 * k + p) % (40 - size), (5 * k + 2 * p) % (H - size)  # left half: owners
            frames[(video, frame)].append(tvpr.Box(video, frame, p, x, y, size))
    if people >= 6:
        frames[SHARED].append(tvpr.Box(*SHARED, 2, 56, 40, 16))  # right half: no overlap with the owner
    images = {}
    for (video, frame), boxes in frames.items():
        img = np.full((H, W, 3), 90, np.uint8)
        for b in boxes:
            img[b.y:b.y + b.size, b.x:b.x + b.size] = colour(b.person_id)
        images[(video, frame)] = img
    for video in sorted({v for v, _ in frames}):
        mine = {f: images[(v, f)] for v, f in images if v == video}
        if video in avi:
            writer = cv2.VideoWriter(str(root / f"{video}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (W, H))
            for f in range(max(mine) + 1):
                writer.write(cv2.cvtColor(mine.get(f, np.full((H, W, 3), 90, np.uint8)), cv2.COLOR_RGB2BGR))
            writer.release()
        else:
            (root / video).mkdir()
            for f, img in mine.items():
                Image.fromarray(img).save(root / video / f"{f:06d}.png")
    boxes = [b for key in sorted(frames) for b in frames[key]]
    tvpr.write_annotations(root / "annotations.csv", boxes)
    return boxes


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("tvpr") / "raw"
    make_raw(root)
    return root


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    manifest = tvpr.prepare(raw, out, seed=0, progress=False)
    return out, manifest, tvpr.load_prepared(out)


# ------------------------------------------------------------------------------------- prepare


def test_prepare_sizes_and_dtypes(prepared):
    _, manifest, data = prepared
    for s in tvpr.SPLITS:
        det, reid, pairs = data.detector[s], data.reid[s], data.pairs[s]
        assert det.images.dtype == np.uint8 and det.images.shape[1:] == (96, 128, 3)
        assert det.centres.dtype == np.float32 and det.centres.shape == (len(det), 2, 2)
        assert reid.images.dtype == np.uint8 and reid.images.shape[1:] == (160, 160, 3)
        assert len(reid) == 6 * len(manifest["splits"][s]["identities"])
        assert pairs.label.dtype == np.float32 and pairs.index_a.dtype == np.int64
        # One detector image per distinct selected frame.
        assert len(det) == len(set(zip(reid.video, reid.frame)))
        assert set(zip(det.video, det.frame.tolist())) == set(zip(reid.video, reid.frame.tolist()))


def test_split_by_identity_is_disjoint_and_keeps_co_appearing_people_together(prepared):
    _, manifest, data = prepared
    ids = {s: set(manifest["splits"][s]["identities"]) for s in tvpr.SPLITS}
    assert [len(ids[s]) for s in tvpr.SPLITS] == [8, 2, 2]  # 12 people, 70/15/15 by largest remainder
    assert ids["train"] | ids["val"] | ids["test"] == set(range(1, 13))
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    for s in tvpr.SPLITS:
        assert set(data.reid[s].identity.tolist()) == ids[s]
        det_ids = data.detector[s].identity
        assert set(det_ids[det_ids >= 0].tolist()) <= ids[s]
    assert any({2, 6} <= ids[s] for s in tvpr.SPLITS)


def test_split_counts_follow_the_thesis():
    assert tvpr.split_counts(100, (0.7, 0.15, 0.15)) == {"train": 70, "val": 15, "test": 15}
    groups = [[p] for p in range(100)]
    split = tvpr.split_identities(groups, (0.7, 0.15, 0.15), seed=3)
    assert [len(split[s]) for s in tvpr.SPLITS] == [70, 15, 15]


def test_pairs_are_balanced_with_no_self_or_repeated_pairs(prepared):
    _, manifest, data = prepared
    for s in tvpr.SPLITS:
        reid, pairs = data.reid[s], data.pairs[s]
        n = len(pairs)
        assert n == round(1.5 * len(reid))
        assert pairs.label.sum() == n // 2
        assert (pairs.index_a != pairs.index_b).all()
        assert len({frozenset(p) for p in zip(pairs.index_a.tolist(), pairs.index_b.tolist())}) == n
        same = reid.identity[pairs.index_a] == reid.identity[pairs.index_b]
        np.testing.assert_array_equal(same, pairs.label == 1)
        a, b = pairs.images(reid, 0, 5)
        assert a.shape == b.shape == (5, 160, 160, 3)


def test_thesis_pair_counts():
    identity = np.repeat(np.arange(70), 6)
    a, b, label = tvpr.make_pairs(identity, 630, np.random.default_rng(0))
    assert len(label) == 630 and label.sum() == 315
    assert len({frozenset(p) for p in zip(a.tolist(), b.tolist())}) == 630
    # Same pairs spread evenly over people: 4 or 5 each.
    per_person = np.bincount(identity[a[label == 1]], minlength=70)
    assert per_person.min() >= 4 and per_person.max() <= 5
    a, b, label = tvpr.make_pairs(np.repeat(np.arange(15), 6), 135, np.random.default_rng(0))
    assert len(label) == 135 and label.sum() == 67


def test_detector_centres_and_crops_match_the_boxes(raw, prepared):
    _, _, data = prepared
    boxes = {(b.video, b.frame, b.person_id): b for b in tvpr.read_annotations(raw / "annotations.csv")}
    seen_shared = False
    for s in tvpr.SPLITS:
        det = data.detector[s]
        for i in range(len(det)):
            n = det.counts[i]
            assert np.isnan(det.centres[i, n:]).all() and (det.identity[i, n:] == -1).all()
            seen_shared |= (det.video[i], det.frame[i]) == SHARED and n == 2
            for k in range(n):
                b = boxes[(str(det.video[i]), int(det.frame[i]), int(det.identity[i, k]))]
                cx, cy = b.centre
                np.testing.assert_allclose(det.centres[i, k], (cx * 128 / W, cy * 96 / H), atol=1e-4)
                px = det.images[i, int(det.centres[i, k, 1]), int(det.centres[i, k, 0])]
                np.testing.assert_allclose(px, colour(b.person_id), atol=2)
        reid = data.reid[s]
        for i in range(len(reid)):
            assert tuple(reid.box[i]) == (lambda b: (b.x, b.y, b.size))(
                boxes[(str(reid.video[i]), int(reid.frame[i]), int(reid.identity[i]))])
            np.testing.assert_allclose(reid.images[i, 80, 80], colour(int(reid.identity[i])), atol=2)
    assert seen_shared or all(SHARED not in set(zip(data.reid[s].video, data.reid[s].frame.tolist()))
                              for s in tvpr.SPLITS)


def test_heatmap_targets_have_a_bump_at_every_person(prepared):
    from helpers.heatmaps import to_heatmap_coords
    _, _, data = prepared
    det = data.detector["train"]
    maps = tvpr.heatmap_targets(det, sigma=1.5)
    assert maps.shape == (len(det), 24, 32, 1) and maps.max() <= 1.0
    ys, xs = np.mgrid[0:24, 0:32]
    for i in range(len(det)):
        near = np.zeros((24, 32), bool)
        for x, y in to_heatmap_coords(det.centres[i, :det.counts[i]]):
            assert maps[i, int(round(y)), int(round(x)), 0] > 0.85
            near |= (xs - x) ** 2 + (ys - y) ** 2 < (4 * 1.5) ** 2
        assert maps[i, ~near, 0].max() < 1e-3  # nothing but the people


def test_person_with_more_stills_gets_six_chosen_reproducibly(raw):
    boxes = tvpr.read_annotations(raw / "annotations.csv")
    a = tvpr.select_stills(boxes, 6, seed=0)
    assert {len(v) for v in a.values()} == {6}
    assert len([b for b in boxes if b.person_id == 1]) == 8
    assert tvpr.select_stills(boxes[::-1], 6, seed=0) == a  # row order does not matter
    assert any(tvpr.select_stills(boxes, 6, seed=s)[1] != a[1] for s in range(1, 10))


def test_manifest_records_counts_sizes_source_and_parameters(raw, prepared):
    out, manifest, data = prepared
    assert json.loads((out / "manifest.json").read_text()) == manifest == data.manifest
    assert manifest["parameters"] == {"seed": 0, "stills": 6, "split": [0.7, 0.15, 0.15],
                                      "detector_size": [96, 128], "reid_size": 160, "pairs_per_image": 1.5}
    assert manifest["source"]["raw_root"] == str(raw.resolve())
    assert manifest["source"]["kind"] == "frames"
    assert manifest["sizes"] == {"detector": [96, 128], "reid": [160, 160], "frames": [[H, W]],
                                 "max_people_per_image": 2}
    for s in tvpr.SPLITS:
        info = manifest["splits"][s]
        assert info["detector_images"] == len(data.detector[s])
        assert info["reid_images"] == len(data.reid[s]) == 6 * info["people"]
        assert info["pairs"] == info["same_pairs"] + info["different_pairs"] == len(data.pairs[s])
        assert (out / manifest["files"][s]["detector"]).is_file()
    assert manifest["totals"]["people"] == 12 and manifest["totals"]["reid_images"] == 72
    assert manifest["source"]["annotated_boxes"] == 12 * 6 + 2 + 1


def test_same_seed_same_data_other_seed_other_data(raw, prepared, tmp_path):
    out, manifest, data = prepared
    again = tvpr.prepare(raw, tmp_path / "again", seed=0, progress=False)
    assert again == manifest
    for s in tvpr.SPLITS:
        for name in manifest["files"][s].values():
            with np.load(out / name) as x, np.load(tmp_path / "again" / name) as y:
                for k in x.files:
                    np.testing.assert_array_equal(x[k], y[k])
    other = tvpr.prepare(raw, tmp_path / "other", seed=1, progress=False)
    assert other["splits"] != manifest["splits"]


def test_prepare_reuses_a_matching_manifest_without_recomputing(raw, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = tvpr.prepare(raw, out, reid_size=32, progress=False)

    def fail(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(tvpr, "validate", fail)
    assert tvpr.prepare(raw, out, reid_size=32, progress=False) == first
    with pytest.raises(AssertionError, match="recomputed"):
        tvpr.prepare(raw, out, reid_size=32, progress=False, force=True)
    with pytest.raises(AssertionError, match="recomputed"):
        tvpr.prepare(raw, out, reid_size=48, progress=False)  # other parameters: recompute


def test_prepare_recomputes_when_annotations_change(tmp_path, monkeypatch):
    root = tmp_path / "raw"
    make_raw(root)
    tvpr.prepare(root, tmp_path / "out", reid_size=32, progress=False)
    with open(root / "annotations.csv", "a") as f:
        f.write("v0,0,99,0,0,8\n")
    monkeypatch.setattr(tvpr, "validate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    with pytest.raises(AssertionError, match="recomputed"):
        tvpr.prepare(root, tmp_path / "out", reid_size=32, progress=False)


def test_load_prepared_without_prepare_says_run_notebook_02(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebook 02"):
        tvpr.load_prepared(tmp_path / "nothing")


# ------------------------------------------------------------------------------------- sources


def test_video_files_and_mixed_sources(tmp_path):
    root = tmp_path / "raw"
    make_raw(root, avi=("v0", "v2"))
    assert tvpr.list_videos(root) == ["v0", "v1", "v2", "v3"]
    src = tvpr.open_source(root, "v0")
    assert isinstance(src, tvpr.VideoFile) and src.frame_size == (H, W)
    manifest = tvpr.prepare(root, tmp_path / "out", reid_size=32, progress=False)
    assert manifest["source"]["kind"] == "mixed"
    assert manifest["source"]["videos"] == {"v0": "video", "v1": "frames", "v2": "video", "v3": "frames"}
    data = tvpr.load_prepared(tmp_path / "out")
    for s in tvpr.SPLITS:
        reid = data.reid[s]
        for i in range(len(reid)):  # MJPG is lossy: the crop centre is near the person's colour
            np.testing.assert_allclose(reid.images[i, 16, 16], colour(int(reid.identity[i])), atol=12)


def test_video_frame_index_is_the_nth_decoded_frame(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (W, H))
    for i in range(8):
        writer.write(np.full((H, W, 3), 20 + 25 * i, np.uint8))
    writer.release()
    src = tvpr.open_source(tmp_path, "clip")
    assert src.count == 8 and src.kind == "video"
    for i in (3, 7, 1, 1, 0):  # backwards too
        frame = src.frame(i)
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        assert abs(float(frame.mean()) - (20 + 25 * i)) < 4
    with pytest.raises(tvpr.FrameNotFound, match="ends after 8 frames"):
        src.frame(8)
    src.close()


def test_frame_folders_name_frames_by_integer_stem(tmp_path):
    (tmp_path / "walk").mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "walk" / "42.jpg")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "walk" / "000007.png")  # greyscale -> RGB
    (tmp_path / "walk" / "notes.txt").write_text("not a frame")
    src = tvpr.open_source(tmp_path, "walk")
    assert src.indices == [7, 42] and src.count == 2 and src.frame_size == (H, W)
    assert src.frame(7).shape == (H, W, 3)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "walk" / "000042.png")
    with pytest.raises(AnnotationError, match="000042.png and 42.jpg"):
        tvpr.open_source(tmp_path, "walk")


def test_a_frame_folder_wins_over_a_recording_of_the_same_name(tmp_path):
    (tmp_path / "walk").mkdir()
    (tmp_path / "walk.oni").write_bytes(b"")
    (tmp_path / "other.mp4").write_bytes(b"")
    assert tvpr.list_videos(tmp_path) == ["other", "walk"]
    assert isinstance(tvpr.open_source(tmp_path, "walk"), tvpr.FrameFolder)


def test_oni_without_bindings_says_pip_install_openni(tmp_path, monkeypatch):
    (tmp_path / "rec.oni").write_bytes(b"\0" * 16)
    monkeypatch.setitem(sys.modules, "openni", None)  # makes `from openni import openni2` fail
    assert tvpr.list_videos(tmp_path) == ["rec"]
    with pytest.raises(ImportError, match="pip install openni"):
        tvpr.open_source(tmp_path, "rec")


def test_annotations_round_trip(tmp_path):
    boxes = [tvpr.Box("a", 3, 1, 2, 4, 10), tvpr.Box("b b", 0, 2, 0, 0, 5)]
    tvpr.write_annotations(tmp_path / "ann.csv", boxes)
    assert (tmp_path / "ann.csv").read_text().splitlines()[0] == ",".join(tvpr.ANNOTATION_COLUMNS)
    back = tvpr.read_annotations(tmp_path / "ann.csv")
    assert back == boxes and [b.line for b in back] == [2, 3]


# ------------------------------------------------------------------------------------- bad input


@pytest.fixture
def bad(tmp_path):
    """A fresh raw folder plus helpers to edit its CSV by line number (header = line 1)."""
    root = tmp_path / "raw"
    make_raw(root)
    csv = root / "annotations.csv"

    def lines():
        return csv.read_text().splitlines()

    def line_of(video, frame, person):
        return lines().index(next(row for row in lines() if row.startswith(f"{video},{frame},{person},"))) + 1

    def edit(line, new):
        rows = lines()
        rows[line - 1] = new
        csv.write_text("\n".join(rows) + "\n")

    return root, csv, lines, line_of, edit


def _fails(root, *needles, error=AnnotationError):
    with pytest.raises(error) as info:
        tvpr.validate(root)
    for needle in needles:
        assert needle in str(info.value), f"{needle!r} not in: {info.value}"
    return str(info.value)


def test_missing_raw_folder_and_annotations(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        tvpr.validate(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        tvpr.prepare(tmp_path / "nowhere", tmp_path / "out", progress=False)
    (tmp_path / "raw" / "v0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="annotations.csv"):
        tvpr.validate(tmp_path / "raw")
    with pytest.raises(FileNotFoundError, match="annotations.csv"):
        tvpr.prepare(tmp_path / "raw", tmp_path / "out", progress=False)


def test_unknown_video(bad):
    root, csv, lines, line_of, edit = bad
    n = line_of("v2", 0, 3)
    edit(n, lines()[n - 1].replace("v2,", "v9,", 1))
    _fails(root, "annotations.csv", f"line {n}:", "'v9'")


def test_missing_frame_file(bad):
    root, csv, lines, line_of, edit = bad
    n = line_of("v2", 4, 3)
    (root / "v2" / "000004.png").unlink()
    _fails(root, "annotations.csv", f"line {n}:", "000004.png", "frame 4")


def test_unreadable_image(bad):
    root, csv, lines, line_of, edit = bad
    n = line_of("v3", 2, 4)
    (root / "v3" / "000002.png").write_bytes(b"not a png at all")
    _fails(root, "annotations.csv", f"line {n}:", "000002.png", "cannot be read")


@pytest.mark.parametrize("x, y, size, words", [
    (70, 0, 16, "outside the 80x64 frame"),   # x + size > W
    (0, 50, 16, "outside the 80x64 frame"),   # y + size > H
    (-1, 0, 16, "x=-1"),
    (0, -3, 16, "y=-3"),
    (0, 0, 0, "size=0"),
    (0, 0, -5, "size=-5"),
])
def test_box_outside_the_frame_or_empty(bad, x, y, size, words):
    root, csv, lines, line_of, edit = bad
    n = line_of("v1", 2, 2)
    edit(n, f"v1,2,2,{x},{y},{size}")
    _fails(root, "annotations.csv", f"line {n}:", words)


@pytest.mark.parametrize("row", ["v1,2,2,3.5,4,16", "v1,two,2,3,4,16", "v1,2,2,3,4,", "v1,2,2,3,4"])
def test_non_integer_values(bad, row):
    root, csv, lines, line_of, edit = bad
    n = line_of("v1", 2, 2)
    edit(n, row)
    _fails(root, "annotations.csv", f"line {n}:")


def test_duplicate_rows_name_both_lines(bad):
    root, csv, lines, line_of, edit = bad
    n = line_of("v1", 4, 2)
    last = len(lines()) + 1
    csv.write_text("\n".join(lines() + [lines()[n - 1]]) + "\n")
    _fails(root, "annotations.csv", f"lines {n} and {last}:", "person 2", "twice")


def test_person_with_too_few_stills(bad):
    root, csv, lines, line_of, edit = bad
    rows = lines()
    del rows[line_of("v2", 6, 3) - 1]
    csv.write_text("\n".join(rows) + "\n")
    msg = _fails(root, "annotations.csv", "person 3 has 5 annotated stills", "at least 6")
    assert "lines " in msg


def test_wrong_header(bad):
    root, csv, lines, line_of, edit = bad
    edit(1, "video,frame,person,x,y,size")
    _fails(root, "annotations.csv", "line 1:", "video,frame,person_id,x,y,size")


def test_too_few_people_for_three_splits(tmp_path):
    root = tmp_path / "raw"
    make_raw(root, people=4)
    with pytest.raises(AnnotationError, match="at least 2"):
        tvpr.prepare(root, tmp_path / "out", progress=False)


def test_unreadable_video_file(tmp_path):
    root = tmp_path / "raw"
    make_raw(root, avi=("v0",))
    (root / "v0.avi").write_bytes(b"this is not a video")
    msg = _fails(root, "annotations.csv", "line 2:", "v0.avi")
    assert "cannot open" in msg


def test_validate_accepts_a_list_of_boxes(raw):
    boxes = tvpr.read_annotations(raw / "annotations.csv")
    checked = tvpr.validate(raw, boxes)
    assert checked.people == list(range(1, 13)) and checked.kinds == {f"v{i}": "frames" for i in range(4)}
    assert set(checked.frame_sizes.values()) == {(H, W)}
    moved = [tvpr.Box(b.video, b.frame, b.person_id, b.x + 100, b.y, b.size) for b in boxes]
    with pytest.raises(AnnotationError, match="line 2: .*outside"):
        tvpr.validate(raw, moved)

"""The offline TVPR stand-in: raw layout, annotations, determinism and enough realism to be a real test."""
import csv
import itertools
import math

import numpy as np
import pytest
from PIL import Image

from helpers import topview

TINY = dict(identities=6, videos=2, stills_per_person=6, frame_size=(96, 128), progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("topview") / "raw"
    csv_path = topview.generate(root, seed=0, **TINY)
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    return root, csv_path, rows[0], [[r[0]] + [int(v) for v in r[1:]] for r in rows[1:]]


def load(root, video, frame):
    return np.asarray(Image.open(root / video / f"{frame:06d}.png"))


def test_layout_and_csv_format(tiny):
    root, csv_path, header, rows = tiny
    assert csv_path == root / "annotations.csv"
    assert header == ["video", "frame", "person_id", "x", "y", "size"]
    assert sorted(p.name for p in root.iterdir()) == ["annotations.csv", "video_01", "video_02"]
    with open(csv_path, newline="") as f:
        for line in list(csv.reader(f))[1:]:
            assert all(v == str(int(v)) for v in line[1:]), line  # plain integers, no decimals
    annotated = {(v, f) for v, f, *_ in rows}
    on_disk = {(p.parent.name, int(p.stem)) for p in root.glob("video_*/*.png")}
    assert annotated == on_disk  # every annotated frame exists and no frame is left unannotated
    assert all(len(p.stem) == 6 for p in root.glob("video_*/*.png"))
    for video, frame in sorted(annotated):
        with Image.open(root / video / f"{frame:06d}.png") as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (128, 96)


def test_people_stills_and_boxes(tiny):
    _, _, _, rows = tiny
    counts = {}
    for _, _, pid, _, _, _ in rows:
        counts[pid] = counts.get(pid, 0) + 1
    assert sorted(counts) == list(range(1, 7))
    assert min(counts.values()) >= 6
    for video, frame, pid, x, y, size in rows:
        assert size > 0 and 0 <= x and 0 <= y and x + size <= 128 and y + size <= 96, (video, frame, pid)
    per_frame = {}
    for video, frame, pid, *_ in rows:
        per_frame.setdefault((video, frame), []).append(pid)
    assert {len(p) for p in per_frame.values()} == {1, 2}  # some frames show two walkers
    assert all(len(set(p)) == len(p) for p in per_frame.values())
    videos_per_person = {pid: {v for v, _, p, *_ in rows if p == pid} for pid in counts}
    assert set().union(*videos_per_person.values()) == {"video_01", "video_02"}


def test_box_mostly_encloses_the_person_and_has_tvpr_size():
    rng = np.random.default_rng(0)
    sizes = []
    for p in topview.sample_people(np.random.default_rng(5), 40):
        centre = (rng.uniform(150, 490), rng.uniform(150, 330))
        heading, phase = rng.uniform(0, 2 * math.pi, 2)
        pl = topview.place(p, centre, heading, phase, (480, 640), 1.0, rng)
        x, y, size = pl.box
        alpha = pl.patch[..., 3]
        ys, xs = np.mgrid[0:alpha.shape[0], 0:alpha.shape[1]]
        xs, ys = xs + pl.left, ys + pl.top  # frame coordinates
        in_box = (xs >= x) & (xs < x + size) & (ys >= y) & (ys < y + size)
        assert alpha[in_box].sum() >= 0.97 * alpha.sum()
        body_y, body_x = np.nonzero(alpha > 0.5)
        assert size <= 1.2 * max(np.ptp(body_x), np.ptp(body_y)) + 2
        sizes.append(size)
    assert 90 <= min(sizes) and max(sizes) <= 240 and 125 <= np.median(sizes) <= 190


def test_same_seed_same_data_other_seed_other_data(tiny, tmp_path):
    root, csv_path, _, rows = tiny
    again = topview.generate(tmp_path / "again", seed=0, **TINY)
    assert again.read_bytes() == csv_path.read_bytes()
    video, frame = rows[len(rows) // 2][:2]
    assert np.array_equal(load(root, video, frame), load(tmp_path / "again", video, frame))
    other = topview.generate(tmp_path / "other", seed=1, **TINY)
    assert other.read_bytes() != csv_path.read_bytes()


def test_people_do_not_depend_on_how_many_are_drawn():
    few = topview.sample_people(np.random.default_rng(3), 6)
    many = topview.sample_people(np.random.default_rng(3), 100)
    assert few == many[:6]


def test_refuses_to_overwrite(tiny):
    root, csv_path, _, _ = tiny
    before = csv_path.read_bytes()
    with pytest.raises(FileExistsError, match="empty folder"):
        topview.generate(root, seed=3, **TINY)
    assert csv_path.read_bytes() == before


BAD = [dict(identities=1), dict(videos=0), dict(videos=7), dict(stills_per_person=0),
       dict(frame_size=(40, 128)), dict(frame_size=(96, 50))]


@pytest.mark.parametrize("bad", BAD)
def test_bad_arguments(tmp_path, bad):
    with pytest.raises(ValueError):
        topview.generate(tmp_path / "raw", **{**TINY, **bad})
    assert not (tmp_path / "raw").exists()


def test_people_look_different_and_stills_vary(tiny):
    root, _, _, rows = tiny
    means, stills = {}, {}
    for video, frame, pid, x, y, size in rows:
        img = load(root, video, frame).astype(np.float32)
        middle = img[y + size // 4:y + 3 * size // 4, x + size // 4:x + 3 * size // 4]  # mostly the person
        means.setdefault(pid, []).append(middle.mean(axis=(0, 1)))
        crop = Image.fromarray(img[y:y + size, x:x + size].astype(np.uint8)).resize((24, 24))
        stills.setdefault(pid, []).append(np.asarray(crop, dtype=np.float32))
    centre = {pid: np.mean(m, axis=0) for pid, m in means.items()}
    between = np.mean([np.linalg.norm(centre[a] - centre[b]) for a, b in itertools.combinations(centre, 2)])
    within = np.mean([np.linalg.norm(m - centre[pid]) for pid, ms in means.items() for m in ms])
    assert between > 2 * within and within > 1  # people differ more than their own stills, which do vary
    for pid, crops in stills.items():  # no two stills of one person are the same picture
        assert all(np.abs(a - b).mean() > 2 for a, b in itertools.combinations(crops, 2)), pid


def test_colour_alone_is_not_an_identity():
    people = topview.sample_people(np.random.default_rng(0), 100)
    tops = np.array([p.top for p in people], dtype=float)
    near = [np.linalg.norm(tops[i] - tops[j]) < 25 for i, j in itertools.combinations(range(100), 2)]
    assert sum(near) >= 50  # look-alike clothing is common, as in an office
    assert len({p.pattern for p in people}) == 4 and len({p.hair_length for p in people}) >= 2
    assert {p.bag for p in people} == {"none", "backpack", "shoulder"}
    assert any(p.coat for p in people) and any(p.scarf for p in people)


def test_background_is_busy(tiny):
    root, _, _, rows = tiny
    for video in ("video_01", "video_02"):
        frame_rows = [r for r in rows if r[0] == video]
        frame = frame_rows[0][1]
        img = load(root, video, frame).astype(np.float32)
        free = np.ones(img.shape[:2], bool)
        for _, f, _, x, y, size in frame_rows:
            if f == frame:
                free[y:y + size, x:x + size] = False
        assert free.mean() > 0.3 and img[free].std(axis=0).mean() > 15


def test_background_stays_within_a_video_and_differs_between_videos(tiny):
    root, _, _, rows = tiny

    def frame(video, k):
        f = sorted({r[1] for r in rows if r[0] == video})[k]
        free = np.ones((96, 128), bool)
        for v, ff, _, x, y, size in rows:
            if (v, ff) == (video, f):
                free[y:y + size, x:x + size] = False
        return load(root, video, f).astype(np.float32), free

    (a, fa), (b, fb), (c, fc) = frame("video_01", 0), frame("video_01", 1), frame("video_02", 0)
    same, other = np.abs(a - b)[fa & fb].mean(), np.abs(a - c)[fa & fc].mean()
    assert 0 < same < 12 and other > 2 * same


def test_few_people_are_tied_together_by_shared_frames():
    """Preparation keeps people who share a frame in one split, so such groups must stay small."""
    people = topview.sample_people(np.random.default_rng(0), 100)
    frames = topview._schedule(np.random.default_rng(0), people, 23, 6, (480, 640), 1.0)
    group = list(range(100))

    def root(i):
        while group[i] != i:
            i = group[i]
        return i

    shared = 0
    for video in frames:
        for stills in video:
            assert len(stills) in (1, 2)
            if len(stills) == 2:
                shared += 1
                group[root(stills[0].person)] = root(stills[1].person)
    sizes = np.bincount([root(i) for i in range(100)])
    assert shared >= 30 and sizes.max() == 2  # only companions share frames

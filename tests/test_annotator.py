"""The annotation store (resume, undo, atomic saves, checks) and the ipywidgets tool, without a front end."""
import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import tvpr
from helpers.annotator import AnnotationStore, annotate, draw_boxes
from helpers.tvpr import AnnotationError, Box

H, W = 48, 64


def test_add_saves_at_once_and_a_second_store_resumes(tmp_path):
    path = tmp_path / "annotations.csv"
    store = AnnotationStore(path)
    assert len(store) == 0 and not path.exists()
    store.add("v0", 3, 1, 2, 4, 10)
    store.add("v0", 3, 2, 20, 4, 12, frame_size=(H, W))
    assert tvpr.read_annotations(path) == [Box("v0", 3, 1, 2, 4, 10), Box("v0", 3, 2, 20, 4, 12)]
    again = AnnotationStore(path)
    assert again.boxes == store.boxes
    again.add("v1", 0, 1, 0, 0, 8)
    assert AnnotationStore(path).count_per_person() == {1: 2, 2: 1}


def test_undo_removes_the_last_box_and_persists(tmp_path):
    path = tmp_path / "annotations.csv"
    store = AnnotationStore(path)
    store.add("v0", 0, 1, 0, 0, 8)
    store.add("v0", 1, 1, 1, 1, 8)
    assert store.undo() == Box("v0", 1, 1, 1, 1, 8)
    assert AnnotationStore(path).boxes == [Box("v0", 0, 1, 0, 0, 8)]
    resumed = AnnotationStore(path)
    assert resumed.undo() == Box("v0", 0, 1, 0, 0, 8)  # the last box in the file, also across sessions
    assert resumed.undo() is None
    assert AnnotationStore(path).boxes == []
    assert path.read_text().strip() == ",".join(tvpr.ANNOTATION_COLUMNS)


def test_saves_are_atomic_and_leave_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "annotations.csv"
    store = AnnotationStore(path)
    for i in range(5):
        store.add("v0", i, 1, 0, 0, 8)
    store.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.csv"]

    # A failure while writing leaves the old file and the store's memory as they were.
    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tvpr.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        store.add("v0", 9, 1, 0, 0, 8)
    assert len(store) == 4 and len(tvpr.read_annotations(path)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.csv"]


@pytest.mark.parametrize("args, words", [
    (("v0", 0, 1, 0, 0, 0), "size=0"),
    (("v0", 0, 1, -1, 0, 8), "x=-1"),
    (("v0", 0, 1, 60, 0, 8), "outside the 64x48 frame"),
    (("v0", 0, 1, 0, 44, 8), "outside the 64x48 frame"),
    (("v0", 0, 1, 0.5, 0, 8), "x=0.5 is not an integer"),
    (("v0", 0, "1", 0, 0, 8), "person_id='1' is not an integer"),
    (("v0", -1, 1, 0, 0, 8), "frame=-1"),
    (("", 0, 1, 0, 0, 8), "video name is empty"),
])
def test_bad_boxes_are_refused_with_a_reason(tmp_path, args, words):
    store = AnnotationStore(tmp_path / "annotations.csv")
    with pytest.raises(AnnotationError, match=words):
        store.add(*args, frame_size=(H, W))
    assert len(store) == 0


def test_the_same_person_twice_in_one_frame_is_refused(tmp_path):
    store = AnnotationStore(tmp_path / "annotations.csv")
    store.add("v0", 0, 1, 0, 0, 8)
    with pytest.raises(AnnotationError, match="already has a box"):
        store.add("v0", 0, 1, 10, 10, 8)
    store.add("v0", 0, 2, 10, 10, 8)
    store.add("v0", 1, 1, 10, 10, 8)
    assert len(store) == 3


def test_numpy_integers_are_accepted(tmp_path):
    store = AnnotationStore(tmp_path / "annotations.csv")
    box = store.add("v0", np.int64(2), np.int32(1), np.int64(3), np.uint8(4), np.int16(5))
    assert box == Box("v0", 2, 1, 3, 4, 5) and type(box.x) is int


def test_queries(tmp_path):
    store = AnnotationStore(tmp_path / "annotations.csv")
    assert store.next_person_id() == 1 and store.count_per_person() == {}
    for frame in range(6):
        store.add("v0", frame, 3, 0, 0, 8)
    store.add("v0", 0, 1, 10, 10, 8)
    store.add("v1", 0, 1, 10, 10, 8)
    assert store.next_person_id() == 4
    assert store.count_per_person() == {1: 2, 3: 6}
    assert [b.person_id for b in store.boxes_for("v0", 0)] == [3, 1]
    assert store.boxes_for("v1", 5) == []
    assert store.summary(6) == "8 boxes, 2 people, 1 with 6+ stills; needing more: person 1: 2/6"


def test_a_store_reads_what_prepare_reads(tmp_path):
    path = tmp_path / "annotations.csv"
    tvpr.write_annotations(path, [Box("walk", 4, 7, 1, 2, 3)])
    store = AnnotationStore(path)
    store.add("walk", 5, 7, 1, 2, 3)
    assert [b.line for b in tvpr.read_annotations(path)] == [2, 3]
    path.write_text("video,frame,person_id,x,y,size\nwalk,4,7,1,2,big\n")
    with pytest.raises(AnnotationError, match="line 2"):
        AnnotationStore(path)


def test_draw_boxes_marks_saved_and_pending_boxes():
    image = np.zeros((H, W, 3), np.uint8)
    out = draw_boxes(image, [Box("v", 0, 1, 2, 2, 10)], pending=(30, 5, 12))
    assert out[2, 5].tolist() == [0, 200, 0] and out[5, 35].tolist() == [230, 0, 0]
    assert image.max() == 0  # the frame itself is untouched


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    for video, n in (("a", 3), ("b", 2)):
        (root / video).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(root / video / f"{i:06d}.png")
    writer = cv2.VideoWriter(str(root / "c.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (W, H))
    for i in range(4):
        writer.write(np.full((H, W, 3), 30 * i, np.uint8))
    writer.release()
    return root


def test_annotate_builds_and_its_buttons_drive_the_store(raw):
    pytest.importorskip("ipywidgets")
    ui = annotate(raw)
    c, store = ui.controls, ui.store
    assert store.path == raw / "annotations.csv"
    assert list(c.video.options) == ["a", "b", "c"] and c.position.max == 2
    assert c.x.max == W - 1 and c.size.max == H and c.image.value[:4] == b"\x89PNG"
    assert c.person.value == 1

    c.next.click()
    c.x.value, c.y.value, c.size.value = 5, 6, 20
    c.add.click()
    assert tvpr.read_annotations(raw / "annotations.csv") == [Box("a", 1, 1, 5, 6, 20)]
    assert "1 boxes, 1 people" in c.status.value

    c.add.click()  # the same person twice in one frame
    assert c.message.value.startswith("Not added") and len(store) == 1
    c.x.value = W - 10  # the box now leaves the frame
    c.person.value = 2
    c.add.click()
    assert "outside" in c.message.value and len(store) == 1

    c.new_person.click()
    assert c.person.value == 2
    c.undo.click()
    assert tvpr.read_annotations(raw / "annotations.csv") == []

    c.previous.click()
    c.previous.click()  # stays at the first frame
    assert c.position.value == 0
    c.video.value = "c"  # a video file
    assert c.position.max == 3 and c.position.value == 0
    c.position.value = 2
    c.x.value, c.y.value, c.size.value = 0, 0, 10
    c.add.click()
    assert AnnotationStore(raw / "annotations.csv").boxes == [Box("c", 2, 2, 0, 0, 10)]


def test_annotate_resumes_an_existing_csv_and_needs_videos(raw, tmp_path):
    pytest.importorskip("ipywidgets")
    tvpr.write_annotations(tmp_path / "mine.csv", [Box("b", 1, 5, 0, 0, 8)])
    ui = annotate(raw, csv_path=tmp_path / "mine.csv", stills=6)
    assert ui.controls.person.value == 6 and "person 5: 1/6" in ui.controls.status.value
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No videos"):
        annotate(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        annotate(tmp_path / "missing")

"""Reading, checking and preparing TVPR-shaped raw data (thesis 3.2): frames plus hand-drawn square boxes.

Raw data live in one folder ``raw_root``; each video is stored in one of three ways:

    raw_root/annotations.csv        one row per person per annotated frame (below)
    raw_root/<video>/000042.png     (a) extracted colour frames, PNG or JPG; the frame index is the
                                        integer value of the file stem (000042.png and 42.jpg are frame 42)
    raw_root/<video>.mp4            (b) a video file (.mp4 .avi .mkv .mov) read with OpenCV; frame index =
                                        the n-th decoded frame, counting from 0
    raw_root/<video>.oni            (c) an OpenNI recording, as TVPR ships; needs `pip install openni` and
                                        the OpenNI2 runtime; frame index = n-th colour frame, from 0

A folder wins over a file of the same name (frames extracted next to their recording).

annotations.csv (UTF-8, comma-separated; line numbers in messages count the header as line 1):

    video,frame,person_id,x,y,size
    walk01,42,7,310,120,96

``video`` is the folder name or the file name without its suffix. ``frame``, ``person_id``, ``x``, ``y`` and
``size`` are integers: (x, y) is the top-left corner of a SQUARE box of side ``size`` in full-frame pixels,
and the box lies inside the frame. A person appears in at least ``stills`` (6) annotated frames. Annotate
every person visible in an annotated frame: all of them become detector targets for that frame.

``prepare(raw_root, out_dir)`` writes (N detector images, M ReID crops, P pairs per split):

    manifest.json          counts and identities per split, sizes, source, seed and every parameter
    detector_<split>.npz   images uint8 (N, 96, 128, 3) the full frame downsized;
                           centres float32 (N, K, 2) box centres (x, y) in detector-image pixels, NaN-padded;
                           counts int32 (N,) people per image; identity int64 (N, K), -1-padded;
                           video str (N,); frame int64 (N,)
    reid_<split>.npz       images uint8 (M, 160, 160, 3) the boxes cut from the full frame and resized;
                           identity int64 (M,); video str (M,); frame int64 (M,); box int64 (M, 3) x, y, size
    pairs_<split>.npz      index_a, index_b int64 (P,) into reid_<split>; label float32 (P,) 1 same, 0 not

Choices the thesis leaves open (also written to manifest.json): a person with more stills gets 6 drawn
from the seed; a frame chosen as a still gives ONE detector image whose targets are everyone annotated in
it, and people annotated together in a chosen frame go to the same split, so no frame is in two splits;
pairs are 1.5 per crop, half (rounded down) of one person, spread evenly, none with itself or twice.

No TensorFlow here: notebooks read these arrays with ``load_prepared``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import numbers
import os
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from helpers.heatmaps import STRIDE, gaussian_heatmaps, to_heatmap_coords

ANNOTATION_COLUMNS = ("video", "frame", "person_id", "x", "y", "size")
ANNOTATIONS_FILE = "annotations.csv"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
ONI_SUFFIX = ".oni"
RUN_PREPARE = "run notebook 02 (TVPR preparation, helpers.tvpr.prepare) first"
_STREAMS = {"stills": 0, "split": 1, "pairs": 2}  # independent random streams from one seed

MULTI_PERSON_CHOICE = (
    "One detector image per distinct selected frame; its targets are every person annotated in that "
    "frame (centres NaN-padded to K, with counts). People annotated in one selected frame are kept in "
    "the same split, so no frame is in two splits. One ReID crop per selected still.")
PAIRS_CHOICE = (
    "round(pairs_per_image x crops) pairs per split: floor(half) of one person (spread round-robin over "
    "people), the rest of two different people (each crop in turn as first image); no crop with "
    "itself, no pair twice in either order; random order and orientation from the seed.")


class AnnotationError(ValueError):
    """A problem in annotations.csv or the raw frames it points to; the message says where and what to do."""


class FrameNotFound(LookupError):
    """The requested frame index does not exist in a video or frame folder."""


class UnreadableFrame(OSError):
    """An image or video file exists but cannot be decoded."""


# ---------------------------------------------------------------------------------------------------
# annotations.csv

@dataclass(frozen=True)
class Box:
    """One person in one frame: a square of side ``size`` with top-left corner (x, y), in frame pixels."""
    video: str
    frame: int
    person_id: int
    x: int
    y: int
    size: int
    line: int | None = field(default=None, compare=False)  # line in annotations.csv, for messages

    @property
    def key(self) -> tuple:
        return (self.video, self.frame, self.person_id)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.size / 2.0, self.y + self.size / 2.0)


def read_annotations(csv_path) -> list[Box]:
    """All rows of an annotations.csv as Boxes, in file order; bad headers or values raise AnnotationError."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"{csv_path} does not exist: draw the boxes with helpers.annotator.annotate(raw_root), or put an "
            f"annotations.csv with the header {','.join(ANNOTATION_COLUMNS)} in the raw folder.")
    boxes = []
    # utf-8-sig: spreadsheet programs often save a byte-order mark that would spoil the header.
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != ANNOTATION_COLUMNS:
            raise AnnotationError(
                f"{csv_path}, line 1: the header is {','.join(header or [])!r}; the first line must be "
                f"exactly {','.join(ANNOTATION_COLUMNS)}.")
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines (often one at the end) carry no box
            if len(row) != len(ANNOTATION_COLUMNS):
                raise AnnotationError(
                    f"{csv_path}, line {line}: {len(row)} values ({','.join(row)}), expected "
                    f"{len(ANNOTATION_COLUMNS)} ({','.join(ANNOTATION_COLUMNS)}). Fix or delete the row.")
            video = row[0].strip()
            if not video:
                raise AnnotationError(f"{csv_path}, line {line}: the video name is empty. Fill it in or "
                                      "delete the row.")
            values = []
            for name, text in zip(ANNOTATION_COLUMNS[1:], row[1:]):
                try:
                    values.append(int(text.strip()))
                except ValueError:
                    raise AnnotationError(
                        f"{csv_path}, line {line}: {name}={text.strip()!r} is not an integer; frame, "
                        "person_id, x, y and size must be whole numbers. Fix the row.") from None
            boxes.append(Box(video, *values, line=line))
    return boxes


def write_annotations(csv_path, boxes) -> None:
    """Write boxes to csv_path atomically (temp file, then rename), so a crash never leaves half a file."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [[b.video, int(b.frame), int(b.person_id), int(b.x), int(b.y), int(b.size)] for b in boxes]
    _atomic_write(csv_path, lambda f: _write_csv(f, rows), newline="")


def _write_csv(f, rows) -> None:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(ANNOTATION_COLUMNS)
    writer.writerows(rows)


def _atomic_write(path: Path, write, newline=None) -> None:
    # The temp file sits next to the target so os.replace is a rename within one file system.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; the CSV is an ordinary project file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def box_problem(x: int, y: int, size: int, frame_size=None) -> str | None:
    """Why a box is not valid, or None; frame_size is (height, width) when known."""
    if size <= 0:
        return f"size={size}: a box needs a side of at least 1 pixel"
    if x < 0 or y < 0:
        return f"the corner x={x}, y={y} lies outside the frame; x and y must be at least 0"
    if frame_size is not None:
        h, w = frame_size
        if x + size > w or y + size > h:
            return (f"the box covers x {x}..{x + size}, y {y}..{y + size}, outside the {w}x{h} frame "
                    f"(needs x + size <= {w} and y + size <= {h})")
    return None


def as_int(name: str, value) -> int:
    """An integer annotation value; floats, strings and bools raise AnnotationError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise AnnotationError(f"{name}={value!r} is not an integer; box values are whole pixels and indices.")
    return int(value)


# ---------------------------------------------------------------------------------------------------
# Frame sources: .frame(index) -> uint8 (H, W, 3) RGB, .frame_size (H, W), .count, .indices

class FrameFolder:
    """Format (a): a folder of frames named by their integer index."""
    kind = "frames"

    def __init__(self, folder):
        self.path = Path(folder)
        self.name = self.path.name
        self._files: dict[int, Path] = {}
        for p in sorted(self.path.iterdir()):
            if p.name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                index = int(p.stem)
            except ValueError:
                continue  # not a frame: frames are named by their index only
            if index in self._files:
                raise AnnotationError(f"{self.path}: {self._files[index].name} and {p.name} are both frame "
                                      f"{index}. Keep one of them.")
            self._files[index] = p
        self.indices = sorted(self._files)
        self.count = len(self.indices)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        if not self.indices:
            return None
        try:
            with Image.open(self._files[self.indices[0]]) as im:
                return (im.height, im.width)
        except OSError:
            return None

    def location(self, index: int) -> str:
        p = self._files.get(index)
        return str(p) if p else str(self.path / self._example_name(index))

    def _example_name(self, index: int) -> str:
        # Suggest the name in the folder's own style (zero padding, suffix).
        if self.indices:
            first = self._files[self.indices[0]]
            return f"{index:0{len(first.stem)}d}{first.suffix}"
        return f"{index:06d}.png"

    def frame(self, index: int) -> np.ndarray:
        p = self._files.get(int(index))
        if p is None:
            raise FrameNotFound(
                f"frame {index} of video {self.name!r} is missing: no image named by the index {index} "
                f"(e.g. {self._example_name(index)}) in {self.path}")
        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except (OSError, ValueError, SyntaxError) as e:
            raise UnreadableFrame(f"{p} cannot be read as an image ({e})") from None

    def close(self) -> None:
        pass


class VideoFile:
    """Format (b): a video file decoded with OpenCV, frame by frame from the start."""
    kind = "video"

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.stem
        self._cap = None
        self._pos = 0  # index of the frame the decoder returns next
        self._last: tuple[int, np.ndarray] | None = None
        cap = self._open()
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_size = (h, w) if w > 0 and h > 0 else None
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n <= 0:  # some containers do not store it: count by decoding once
            n = 0
            while cap.grab():
                n += 1
            self._open()
        self.count = n
        self.indices = range(n)

    def _open(self):
        if self._cap is not None:
            self._cap.release()
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise UnreadableFrame(
                f"OpenCV cannot open the video {self.path}. Convert it (e.g. ffmpeg -i in out.mp4) or "
                f"extract its frames into {self.path.with_suffix('')}/ as 000000.png, 000001.png, ...")
        self._cap, self._pos = cap, 0
        return cap

    def location(self, index: int) -> str:
        return f"{self.path} (frame {index})"

    def frame(self, index: int) -> np.ndarray:
        index = int(index)
        if self._last is not None and self._last[0] == index:
            return self._last[1].copy()
        if index < 0:
            raise FrameNotFound(f"frame {index} of video {self.name!r} does not exist: frames count from 0")
        if self._cap is None or index < self._pos:
            self._open()
        # Seeking with CAP_PROP_POS_FRAMES is not frame-exact for every codec, so step through instead;
        # reading annotated frames in increasing order keeps this one pass per video.
        while self._pos < index:
            if not self._cap.grab():
                raise FrameNotFound(f"frame {index} of video {self.name!r} is missing: {self.path} ends "
                                    f"after {self._pos} frames")
            self._pos += 1
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise FrameNotFound(f"frame {index} of video {self.name!r} is missing: {self.path} ends after "
                                f"{self._pos} frames (or the frame is damaged)")
        self._pos += 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._last = (index, rgb)
        return rgb.copy()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _import_openni2():
    try:
        from openni import openni2
    except ImportError:
        raise ImportError(
            "Reading .oni recordings needs the OpenNI2 Python bindings and runtime: `pip install openni`, "
            "install the OpenNI2 runtime and set OPENNI2_REDIST to its Redist folder. Or extract the colour "
            "frames to <raw_root>/<video>/000000.png, 000001.png, ... (format (a)) and rerun.") from None
    return openni2


class OniRecording:
    """Format (c): the colour stream of an OpenNI .oni recording (as TVPR ships), via `openni`."""
    kind = "oni"

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.stem
        openni2 = _import_openni2()
        if not openni2.is_initialized():
            try:
                openni2.initialize(os.environ.get("OPENNI2_REDIST") or None)
            except Exception as e:
                raise ImportError(f"The OpenNI2 runtime was not found ({e}): install it and set "
                                  "OPENNI2_REDIST to its Redist folder, or extract the frames (format (a)).",
                                  ) from None
        self._device = openni2.Device.open_file(str(self.path).encode())
        self._playback = openni2.PlaybackSupport(self._device)
        self._playback.set_speed(-1)  # no real-time pacing: read_frame returns the next frame at once
        self._stream = self._device.create_color_stream()
        self._stream.start()
        self.count = int(self._playback.get_number_of_frames(self._stream))
        self.indices = range(self.count)
        mode = self._stream.get_video_mode()
        self.frame_size = (int(mode.resolutionY), int(mode.resolutionX))

    def location(self, index: int) -> str:
        return f"{self.path} (colour frame {index})"

    def frame(self, index: int) -> np.ndarray:
        index = int(index)
        if not 0 <= index < self.count:
            raise FrameNotFound(f"frame {index} of video {self.name!r} is missing: {self.path} has "
                                f"{self.count} colour frames")
        self._playback.seek(self._stream, index)
        f = self._stream.read_frame()
        rgb = np.frombuffer(f.get_buffer_as_uint8(), dtype=np.uint8)  # OpenNI colour is RGB888
        return rgb.reshape(f.height, f.width, 3).copy()

    def close(self) -> None:
        self._stream.stop()
        self._device.close()


_SOURCES = {"frames": FrameFolder, "video": VideoFile, "oni": OniRecording}


def _existing_root(raw_root) -> Path:
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise FileNotFoundError(
            f"The raw data folder {raw_root} does not exist. Put the TVPR videos (frame folders, video files "
            f"or .oni recordings) and {ANNOTATIONS_FILE} there, or point raw_root at them.")
    return raw_root


def _video_paths(raw_root) -> dict[str, tuple[Path, str]]:
    raw_root = _existing_root(raw_root)
    entries = [p for p in sorted(raw_root.iterdir()) if not p.name.startswith(".")]
    found = {p.name: (p, "frames") for p in entries if p.is_dir()}
    for p in entries:
        suffix = p.suffix.lower()
        kind = "video" if suffix in VIDEO_SUFFIXES else "oni" if suffix == ONI_SUFFIX else None
        # A folder wins over a recording of the same name: frames are usually extracted next to it.
        if kind and p.is_file() and p.stem not in found:
            found[p.stem] = (p, kind)
    return found


def list_videos(raw_root) -> list[str]:
    """Names of the videos under raw_root (frame folders and video/.oni files), sorted."""
    return sorted(_video_paths(raw_root))


def open_source(raw_root, video: str):
    """The frame source for one video: a FrameFolder, VideoFile or OniRecording."""
    paths = _video_paths(raw_root)
    if video not in paths:
        raise FileNotFoundError(
            f"No video {video!r} in {raw_root}: expected a folder {Path(raw_root) / video}/ of frames or a "
            f"file {video}.mp4/.avi/.mkv/.mov/.oni. Videos there: {sorted(paths) or 'none'}.")
    path, kind = paths[video]
    return _SOURCES[kind](path)


# ---------------------------------------------------------------------------------------------------
# Validation

@dataclass
class RawData:
    """What validate() checked: the boxes, each annotated frame's (height, width) and each video's kind."""
    raw_root: Path
    csv_path: Path
    boxes: list[Box]
    frame_sizes: dict   # (video, frame) -> (height, width)
    kinds: dict         # video -> "frames" | "video" | "oni"

    @property
    def people(self) -> list[int]:
        return sorted({b.person_id for b in self.boxes})


def validate(raw_root, annotations=None, stills: int = 6, progress: bool = False) -> RawData:
    """Check raw data and annotations; the first problem raises one error naming the file, line and fix.

    annotations: path to a CSV (default raw_root/annotations.csv) or a list of Boxes.
    """
    raw_root = _existing_root(raw_root)
    if annotations is None or isinstance(annotations, (str, os.PathLike)):
        csv_path = Path(annotations) if annotations is not None else raw_root / ANNOTATIONS_FILE
        boxes = read_annotations(csv_path)
    else:
        csv_path = Path("annotations")
        boxes = [Box(*_fields(b), line=b.line if b.line is not None else i + 2)
                 for i, b in enumerate(annotations)]
    if not boxes:
        raise AnnotationError(f"{csv_path} has no boxes: annotate at least {stills} stills per person "
                              "(helpers.annotator.annotate).")

    def where(b: Box) -> str:
        return f"{csv_path}, line {b.line}"

    # Cheap checks on the rows first, so typos surface before any frame is decoded.
    videos = _video_paths(raw_root)
    seen: dict[tuple, Box] = {}
    for b in boxes:
        problem = box_problem(b.x, b.y, b.size)
        if problem:
            raise AnnotationError(f"{where(b)}: {problem}. Fix the box or delete the row.")
        if b.key in seen:
            raise AnnotationError(
                f"{csv_path}, lines {seen[b.key].line} and {b.line}: person {b.person_id} is annotated twice "
                f"in video {b.video!r}, frame {b.frame}. Delete one of the two rows.")
        seen[b.key] = b
        if b.video not in videos:
            raise AnnotationError(
                f"{where(b)}: unknown video {b.video!r}: there is no folder {raw_root / b.video}/ and no "
                f"file {b.video}.mp4/.avi/.mkv/.mov/.oni in {raw_root}. Fix the name (videos found: "
                f"{sorted(videos) or 'none'}) or add the video.")

    counts = Counter(b.person_id for b in boxes)
    short = sorted(p for p, n in counts.items() if n < stills)
    if short:
        p = short[0]
        others = (f" Also short: {', '.join(f'person {q} ({counts[q]})' for q in short[1:])}."
                  if len(short) > 1 else "")
        raise AnnotationError(
            f"{csv_path}, {_lines(b for b in boxes if b.person_id == p)}: person {p} has {counts[p]} "
            f"annotated stills, needs at least {stills} (thesis 3.2: six stills per person). Annotate "
            f"{stills - counts[p]} more frames of person {p} or delete their rows.{others}")

    by_frame = _by_frame(boxes)
    frame_sizes, kinds = {}, {}
    source = None
    try:
        # Sorted by video, then frame: each video file is decoded front to back once.
        for video, frame in tqdm(sorted(by_frame), desc="Checking frames", disable=not progress):
            rows = by_frame[(video, frame)]
            if source is None or source.name != video:
                if source is not None:
                    source.close()
                source = None
                try:
                    source = open_source(raw_root, video)
                except UnreadableFrame as e:
                    raise AnnotationError(f"{where(rows[0])}: {e}") from None
                kinds[video] = source.kind
            try:
                image = source.frame(frame)
            except FrameNotFound as e:
                raise AnnotationError(f"{where(rows[0])}: {e}. Add the frame, or fix the frame number or "
                                      "delete the row.") from None
            except UnreadableFrame as e:
                raise AnnotationError(f"{csv_path}, {_lines(rows)}: {e}. Re-extract the frame, or delete the "
                                      "rows that use it.") from None
            h, w = image.shape[:2]
            for b in rows:
                problem = box_problem(b.x, b.y, b.size, (h, w))
                if problem:
                    raise AnnotationError(f"{where(b)}: {problem} in {source.location(frame)}. Move or "
                                          "shrink the box, or delete the row.")
            frame_sizes[(video, frame)] = (h, w)
    finally:
        if source is not None:
            source.close()
    return RawData(raw_root, csv_path, boxes, frame_sizes, kinds)


def _lines(boxes) -> str:
    lines = [str(n) for n in sorted(b.line for b in boxes)]
    return f"line{'s' if len(lines) > 1 else ''} {', '.join(lines)}"


def _fields(b: Box) -> tuple:
    return (b.video, as_int("frame", b.frame), as_int("person_id", b.person_id), as_int("x", b.x),
            as_int("y", b.y), as_int("size", b.size))


def _by_frame(boxes) -> dict[tuple, list[Box]]:
    out = defaultdict(list)
    for b in boxes:
        out[(b.video, b.frame)].append(b)
    return {k: sorted(v, key=lambda b: b.person_id) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------------
# Preparation: stills, split by identity, images, crops, pairs

def _rng(seed: int, stream: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[stream], *more])


def select_stills(boxes, stills: int, seed: int) -> dict[int, list[Box]]:
    """Exactly `stills` boxes per person, chosen reproducibly when a person has more (thesis: six)."""
    per_person = defaultdict(list)
    for b in boxes:
        per_person[b.person_id].append(b)
    rng = _rng(seed, "stills")
    chosen = {}
    for p in sorted(per_person):
        # Sorting first makes the choice independent of the order rows were written in.
        mine = sorted(per_person[p], key=lambda b: (b.video, b.frame))
        if len(mine) < stills:
            raise AnnotationError(f"person {p} has {len(mine)} stills, needs {stills}.")
        keep = range(stills)
        if len(mine) > stills:
            keep = np.sort(rng.choice(len(mine), size=stills, replace=False))
        chosen[p] = [mine[i] for i in keep]
    return chosen


def co_appearing_groups(chosen: dict, boxes) -> list[list[int]]:
    """People linked by sharing a selected frame (as annotated people); each group must stay in one split."""
    by_frame = _by_frame(boxes)
    parent = {p: p for p in chosen}

    def find(p):
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for mine in chosen.values():
        for b in mine:
            people = [o.person_id for o in by_frame[(b.video, b.frame)]]
            for other in people[1:]:
                parent[find(other)] = find(people[0])
    groups = defaultdict(list)
    for p in sorted(parent):
        groups[find(p)].append(p)
    return sorted(groups.values())


def split_counts(n: int, fractions) -> dict[str, int]:
    """People per split by largest remainder (100 people, 70/15/15 -> 70, 15, 15)."""
    raw = [n * f for f in fractions]
    counts = [int(np.floor(r)) for r in raw]
    for i in sorted(range(3), key=lambda i: -(raw[i] - counts[i]))[: n - sum(counts)]:
        counts[i] += 1
    return dict(zip(SPLITS, counts))


def split_identities(groups, fractions, seed: int) -> dict[str, list[int]]:
    """Assign people (in co-appearing groups) to train/val/test, reproducibly, no person in two splits."""
    targets = split_counts(sum(len(g) for g in groups), fractions)
    order = _rng(seed, "split").permutation(len(groups))
    order = sorted(order, key=lambda i: -len(groups[i]))  # big groups first; stable, so ties stay random
    assigned = {s: [] for s in SPLITS}
    for i in order:
        # The split furthest below its target takes the group; ties go to train, then val.
        s = max(SPLITS, key=lambda s: targets[s] - len(assigned[s]))
        assigned[s] += groups[i]
    for s in SPLITS:
        if len(assigned[s]) < 2:
            linked = [g for g in groups if len(g) > 1]
            hint = (f" People annotated in one frame stay together: {linked}." if linked else "")
            raise AnnotationError(
                f"Split {s!r} gets {len(assigned[s])} people of {sum(targets.values())}; every split needs "
                f"at least 2 so that it has pairs of different people. Annotate more people (the thesis had "
                f"100) or change the split fractions.{hint}")
    return {s: sorted(assigned[s]) for s in SPLITS}


def make_pairs(identity, n_pairs: int, rng: np.random.Generator):
    """(index_a, index_b, label): n_pairs // 2 same-person pairs, the rest different; none self or twice."""
    identity = np.asarray(identity)
    n = len(identity)
    n_same, n_diff = n_pairs // 2, n_pairs - n_pairs // 2
    people = np.unique(identity)

    per_person = []
    for p in rng.permutation(people):
        idx = np.flatnonzero(identity == p)
        combos = [(int(idx[i]), int(idx[j])) for i in range(len(idx)) for j in range(i + 1, len(idx))]
        per_person.append([combos[k] for k in rng.permutation(len(combos))])
    same = []
    # Round robin over people spreads same pairs evenly (4 or 5 per person for 6 stills at 1.5 per image).
    for r in range(max((len(c) for c in per_person), default=0)):
        same += [c[r] for c in per_person if r < len(c)]
    if len(same) < n_same:
        raise ValueError(f"{n} crops of {len(people)} people give only {len(same)} same-person pairs; "
                         f"{n_same} wanted. Lower pairs_per_image.")
    same = same[:n_same]

    possible = (n * n - int(np.sum(np.unique(identity, return_counts=True)[1] ** 2))) // 2
    if n_diff > possible:
        raise ValueError(f"{n} crops of {len(people)} people give only {possible} different-person pairs; "
                         f"{n_diff} wanted. Lower pairs_per_image or add people.")
    if 2 * n_diff > possible:
        # Nearly all pairs wanted: enumerate them rather than rejection-sample.
        every = [(i, j) for i in range(n) for j in range(i + 1, n) if identity[i] != identity[j]]
        diff = [every[k] for k in rng.choice(len(every), size=n_diff, replace=False)]
    else:
        # Each crop in turn is the first image, so every crop is used about equally often.
        diff, seen, order, k = [], set(), rng.permutation(n), 0
        while len(diff) < n_diff:
            a = int(order[k % n])
            k += 1
            others = np.flatnonzero(identity != identity[a])
            b = int(others[rng.integers(len(others))])
            key = (min(a, b), max(a, b))
            if key not in seen:
                seen.add(key)
                diff.append(key)

    pairs = np.array(same + diff, dtype=np.int64).reshape(-1, 2)
    label = np.r_[np.ones(len(same)), np.zeros(len(diff))].astype(np.float32)
    swap = rng.random(len(pairs)) < 0.5  # neither slot of the ReID's input should hold the smaller index
    pairs[swap] = pairs[swap][:, ::-1]
    order = rng.permutation(len(pairs))
    return pairs[order, 0], pairs[order, 1], label[order]


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """One image at height x width: area averaging when shrinking, bilinear when enlarging."""
    # INTER_AREA averages when shrinking (no aliasing); it degrades to nearest when enlarging.
    shrink = height <= image.shape[0] and width <= image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _parameters(seed, stills, split, detector_size, reid_size, pairs_per_image) -> dict:
    split = tuple(float(f) for f in split)
    if len(split) != 3 or any(f <= 0 for f in split) or abs(sum(split) - 1.0) > 1e-6:
        raise ValueError(f"split={split} must be three positive fractions (train, val, test) summing to 1.")
    if int(stills) < 2:
        raise ValueError(f"stills={stills}: same-person pairs need at least 2 stills per person.")
    params = {"seed": int(seed), "stills": int(stills), "split": list(split),
              "detector_size": [int(v) for v in detector_size], "reid_size": int(reid_size),
              "pairs_per_image": float(pairs_per_image)}
    return json.loads(json.dumps(params))  # the form it has after a round trip through manifest.json


def _files(split: str) -> dict[str, str]:
    return {kind: f"{kind}_{split}.npz" for kind in ("detector", "reid", "pairs")}


def _read_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((Path(out_dir) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def _reusable(manifest: dict | None, params: dict, source: dict, out_dir: Path) -> bool:
    if not manifest or manifest.get("format") != MANIFEST_FORMAT or manifest.get("parameters") != params:
        return False
    old = manifest.get("source", {})
    keys = ("raw_root", "annotations_sha256")
    if any(old.get(k) != source[k] for k in keys):
        return False
    return all((out_dir / f).is_file() for s in SPLITS for f in _files(s).values())


def prepare(raw_root, out_dir, seed: int = 0, stills: int = 6, split=(0.70, 0.15, 0.15),
            detector_size=(96, 128), reid_size: int = 160, pairs_per_image: float = 1.5,
            progress: bool = True, force: bool = False) -> dict:
    """Validate raw data, write detector images, ReID crops, pairs and manifest.json; return the manifest.

    A manifest with the same parameters and unchanged annotations is returned as is (force=True redoes it).
    """
    raw_root = _existing_root(raw_root)
    out_dir = Path(out_dir)
    csv_path = raw_root / ANNOTATIONS_FILE
    params = _parameters(seed, stills, split, detector_size, reid_size, pairs_per_image)
    if not csv_path.is_file():
        read_annotations(csv_path)  # raises the FileNotFoundError that says what to do
    source = {"raw_root": str(raw_root.resolve()), "annotations": str(csv_path.resolve()),
              "annotations_sha256": _sha256(csv_path)}
    old = _read_manifest(out_dir)
    if not force and _reusable(old, params, source, out_dir):
        return old

    raw = validate(raw_root, csv_path, stills=params["stills"], progress=progress)
    chosen = select_stills(raw.boxes, params["stills"], params["seed"])
    groups = co_appearing_groups(chosen, raw.boxes)
    people = split_identities(groups, params["split"], params["seed"])
    by_frame = _by_frame(raw.boxes)
    det_h, det_w = params["detector_size"]
    size = params["reid_size"]

    # Read every selected frame once, in decoding order, making its detector image and crops together.
    crops_wanted = defaultdict(list)
    for mine in chosen.values():
        for b in mine:
            crops_wanted[(b.video, b.frame)].append(b)
    det_images, crops = {}, {}
    reader = None
    try:
        for video, frame in tqdm(sorted(crops_wanted), desc="Preparing TVPR", disable=not progress):
            if reader is None or reader.name != video:
                if reader is not None:
                    reader.close()
                reader = open_source(raw_root, video)
            image = reader.frame(frame)
            det_images[(video, frame)] = resize(image, det_h, det_w)
            for b in crops_wanted[(video, frame)]:
                crops[b.key] = resize(image[b.y:b.y + b.size, b.x:b.x + b.size], size, size)
    finally:
        if reader is not None:
            reader.close()

    max_people = max(len(by_frame[k]) for k in crops_wanted)
    splits_info = {}
    # The old manifest goes first: a crash while writing must not leave it describing mixed files.
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split_index, s in enumerate(SPLITS):
        mine = [b for p in people[s] for b in chosen[p]]  # sorted by person, then video and frame
        frames = sorted({(b.video, b.frame) for b in mine})
        centres = np.full((len(frames), max_people, 2), np.nan, dtype=np.float32)
        identity = np.full((len(frames), max_people), -1, dtype=np.int64)
        counts = np.zeros(len(frames), dtype=np.int32)
        for i, key in enumerate(frames):
            h, w = raw.frame_sizes[key]
            for k, b in enumerate(by_frame[key]):
                cx, cy = b.centre
                centres[i, k] = (cx * det_w / w, cy * det_h / h)  # continuous coordinates, as heatmaps.py
                identity[i, k] = b.person_id
            counts[i] = len(by_frame[key])
        np.savez(out_dir / f"detector_{s}.npz",
                 images=np.stack([det_images[k] for k in frames]).astype(np.uint8),
                 centres=centres, counts=counts, identity=identity,
                 video=np.array([k[0] for k in frames], dtype=str),
                 frame=np.array([k[1] for k in frames], dtype=np.int64))
        reid_identity = np.array([b.person_id for b in mine], dtype=np.int64)
        np.savez(out_dir / f"reid_{s}.npz",
                 images=np.stack([crops[b.key] for b in mine]).astype(np.uint8), identity=reid_identity,
                 video=np.array([b.video for b in mine], dtype=str),
                 frame=np.array([b.frame for b in mine], dtype=np.int64),
                 box=np.array([(b.x, b.y, b.size) for b in mine], dtype=np.int64))
        n_pairs = int(np.floor(params["pairs_per_image"] * len(mine) + 0.5))
        a, b_, label = make_pairs(reid_identity, n_pairs, _rng(params["seed"], "pairs", split_index))
        np.savez(out_dir / f"pairs_{s}.npz", index_a=a, index_b=b_, label=label)
        splits_info[s] = {
            "identities": [int(p) for p in people[s]], "people": len(people[s]),
            "detector_images": len(frames), "detector_targets": int(counts.sum()),
            "reid_images": len(mine), "pairs": int(len(label)),
            "same_pairs": int(label.sum()), "different_pairs": int(len(label) - label.sum()),
        }

    kinds = sorted(set(raw.kinds.values()))
    manifest = {
        "format": MANIFEST_FORMAT,
        "dataset": "tvpr",
        "parameters": params,
        "source": {**source, "kind": kinds[0] if len(kinds) == 1 else "mixed",
                   "videos": dict(sorted(raw.kinds.items())),
                   "annotated_boxes": len(raw.boxes), "annotated_people": len(raw.people)},
        "sizes": {"detector": [det_h, det_w], "reid": [size, size],
                  "frames": sorted({tuple(v) for v in raw.frame_sizes.values()}),  # (height, width)
                  "max_people_per_image": int(max_people)},
        "splits": splits_info,
        "totals": {k: sum(splits_info[s][k] for s in SPLITS)
                   for k in ("people", "detector_images", "reid_images", "pairs")},
        "files": {s: _files(s) for s in SPLITS},
        "choices": {"multi_person_frames": MULTI_PERSON_CHOICE, "pairs": PAIRS_CHOICE},
    }
    manifest = json.loads(json.dumps(manifest))
    # Written last, so its presence means every file above is complete.
    _atomic_write(out_dir / MANIFEST_FILE, lambda f: json.dump(manifest, f, indent=1))
    return manifest


# ---------------------------------------------------------------------------------------------------
# Reading prepared data

@dataclass
class DetectorImages:
    images: np.ndarray    # (N, H, W, 3) uint8, the full frame downsized
    centres: np.ndarray   # (N, K, 2) float32 (x, y) in image pixels, NaN beyond counts[i]
    counts: np.ndarray    # (N,) people in each image
    identity: np.ndarray  # (N, K) person ids, -1 beyond counts[i]
    video: np.ndarray
    frame: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ReidCrops:
    images: np.ndarray    # (M, S, S, 3) uint8
    identity: np.ndarray  # (M,)
    video: np.ndarray
    frame: np.ndarray
    box: np.ndarray       # (M, 3) x, y, size in full-frame pixels

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Pairs:
    index_a: np.ndarray   # (P,) into the split's ReidCrops
    index_b: np.ndarray
    label: np.ndarray     # (P,) float32, 1 same person, 0 different

    def images(self, crops: ReidCrops, start: int = 0, stop: int | None = None):
        """The crops of a slice of the pairs, as two (n, S, S, 3) uint8 arrays."""
        sl = slice(start, stop)
        return crops.images[self.index_a[sl]], crops.images[self.index_b[sl]]

    def __len__(self) -> int:
        return len(self.label)


@dataclass
class PreparedTVPR:
    manifest: dict
    detector: dict  # split -> DetectorImages
    reid: dict      # split -> ReidCrops
    pairs: dict     # split -> Pairs


def load_prepared(out_dir) -> PreparedTVPR:
    """Read what prepare() wrote, checking it against manifest.json."""
    out_dir = Path(out_dir)
    if not (out_dir / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{out_dir / MANIFEST_FILE} does not exist: {RUN_PREPARE}.")
    manifest = _read_manifest(out_dir)
    if manifest is None or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{out_dir / MANIFEST_FILE} is unreadable or from another version: {RUN_PREPARE} "
                         "(prepare(..., force=True)).")
    det_h, det_w = manifest["sizes"]["detector"]
    size = manifest["parameters"]["reid_size"]
    out = PreparedTVPR(manifest, {}, {}, {})
    for s in SPLITS:
        info = manifest["splits"][s]
        arrays = {}
        for kind, name in manifest["files"][s].items():
            path = out_dir / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing though {MANIFEST_FILE} lists it: {RUN_PREPARE} "
                                        "(prepare(..., force=True)).")
            with np.load(path) as z:
                arrays[kind] = {k: z[k] for k in z.files}
        det = DetectorImages(**arrays["detector"])
        reid = ReidCrops(**arrays["reid"])
        pairs = Pairs(**arrays["pairs"])
        expected = [(det.images.shape, (info["detector_images"], det_h, det_w, 3)),
                    (reid.images.shape, (info["reid_images"], size, size, 3)),
                    (pairs.label.shape, (info["pairs"],))]
        for got, want in expected:
            if tuple(got) != tuple(want):
                raise ValueError(f"{out_dir}: {s} arrays have shape {tuple(got)}, {MANIFEST_FILE} says "
                                 f"{tuple(want)}: {RUN_PREPARE} (prepare(..., force=True)).")
        out.detector[s], out.reid[s], out.pairs[s] = det, reid, pairs
    return out


def heatmap_targets(det: DetectorImages, sigma: float, stride: int = STRIDE) -> np.ndarray:
    """(N, H/stride, W/stride, 1) targets: the maximum of one Gaussian bump per person in each image."""
    n, h, w = det.images.shape[:3]
    out = np.zeros((n, h // stride, w // stride, 1), dtype=np.float32)
    for k in range(det.centres.shape[1]):
        has = det.counts > k
        if has.any():
            coords = to_heatmap_coords(det.centres[has, k], stride)
            bumps = gaussian_heatmaps(coords, h // stride, w // stride, sigma)
            out[has] = np.maximum(out[has], bumps)
    return out

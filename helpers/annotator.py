"""Drawing the square boxes of annotations.csv (thesis 3.2): a resumable store and a small ipywidgets tool.

Every added or undone box is written to the CSV at once (temp file + rename), so closing the notebook loses
nothing and running the tool again resumes. The tool has no mouse drawing: ipywidgets.Image reports no
clicks without extra packages (ipyevents), so x, y and size sliders move a live preview and "Add box"
saves it.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from helpers.tvpr import (ANNOTATIONS_FILE, AnnotationError, Box, as_int, box_problem, list_videos,
                          open_source, read_annotations, write_annotations)

FIRST_PERSON_ID = 1  # annotators count people from 1


class AnnotationStore:
    """The boxes of one annotations.csv: loaded if it exists, saved after every change."""

    def __init__(self, csv_path):
        self.path = Path(csv_path)
        self._boxes: list[Box] = read_annotations(self.path) if self.path.exists() else []

    @property
    def boxes(self) -> list[Box]:
        return list(self._boxes)

    def __len__(self) -> int:
        return len(self._boxes)

    def add(self, video: str, frame: int, person_id: int, x: int, y: int, size: int,
            frame_size=None) -> Box:
        """Append one square box and save; frame_size (height, width) lets it check the box is inside."""
        video = str(video).strip()
        if not video:
            raise AnnotationError("The video name is empty.")
        frame, person_id = as_int("frame", frame), as_int("person_id", person_id)
        x, y, size = as_int("x", x), as_int("y", y), as_int("size", size)
        if frame < 0:
            raise AnnotationError(f"frame={frame}: frames count from 0.")
        problem = box_problem(x, y, size, frame_size)
        if problem:
            raise AnnotationError(f"Box for person {person_id} in video {video!r}, frame {frame}: {problem}.")
        for b in self._boxes:
            if b.key == (video, frame, person_id):
                raise AnnotationError(
                    f"Person {person_id} already has a box in video {video!r}, frame {frame} (line {b.line} "
                    f"of {self.path}). Undo it, or use another person id.")
        box = Box(video, frame, person_id, x, y, size, line=len(self._boxes) + 2)
        self._save(self._boxes + [box])
        return box

    def undo(self) -> Box | None:
        """Remove the last box in the file (the last added, also across sessions) and save; None if empty."""
        if not self._boxes:
            return None
        last = self._boxes[-1]
        self._save(self._boxes[:-1])
        return last

    def _save(self, boxes: list[Box]) -> None:
        # Memory changes only once the file is written, so the two never disagree.
        write_annotations(self.path, boxes)
        self._boxes = boxes

    def boxes_for(self, video: str, frame: int) -> list[Box]:
        return [b for b in self._boxes if b.video == video and b.frame == frame]

    def next_person_id(self) -> int:
        return max((b.person_id for b in self._boxes), default=FIRST_PERSON_ID - 1) + 1

    def count_per_person(self) -> dict[int, int]:
        """Annotated stills per person id, sorted by id."""
        return dict(sorted(Counter(b.person_id for b in self._boxes).items()))

    def summary(self, stills: int = 6) -> str:
        """One line: boxes, people, and who still needs more stills."""
        counts = self.count_per_person()
        short = [f"person {p}: {n}/{stills}" for p, n in counts.items() if n < stills]
        done = len(counts) - len(short)
        text = f"{len(self._boxes)} boxes, {len(counts)} people, {done} with {stills}+ stills"
        return text + (f"; needing more: {', '.join(short)}" if short else "")


def draw_boxes(image: np.ndarray, boxes, pending=None) -> np.ndarray:
    """A copy of an RGB frame with saved boxes in green (labelled by person) and a pending box in red."""
    out = np.ascontiguousarray(image).copy()
    for b in boxes:
        cv2.rectangle(out, (b.x, b.y), (b.x + b.size - 1, b.y + b.size - 1), (0, 200, 0), 1)
        cv2.putText(out, str(b.person_id), (b.x + 2, b.y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 200, 0), 1)
    if pending is not None:
        x, y, size = pending
        cv2.rectangle(out, (x, y), (x + size - 1, y + size - 1), (230, 0, 0), 1)
    return out


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return data.tobytes()


def annotate(raw_root, csv_path=None, stills: int = 6):
    """An ipywidgets tool to draw boxes on raw_root's videos; saves to csv_path (default raw_root's CSV).

    Display the returned widget; its .store is the AnnotationStore and .controls the widgets.
    """
    import ipywidgets as widgets  # only the tool needs a notebook front end

    raw_root = Path(raw_root)
    videos = list_videos(raw_root)
    if not videos:
        raise FileNotFoundError(f"No videos in {raw_root}: put frame folders (<video>/000000.png, ...) or "
                                "video files (.mp4 .avi .mkv .mov .oni) there.")
    store = AnnotationStore(csv_path if csv_path is not None else raw_root / ANNOTATIONS_FILE)
    state = SimpleNamespace(source=None, image=None)

    c = SimpleNamespace(
        video=widgets.Dropdown(options=videos, description="Video"),
        position=widgets.IntSlider(0, min=0, max=0, description="Frame", continuous_update=False),
        frame_label=widgets.Label(),
        previous=widgets.Button(description="◀ Previous"),
        next=widgets.Button(description="Next ▶"),
        person=widgets.BoundedIntText(store.next_person_id(), min=0, max=10**9, description="Person id"),
        new_person=widgets.Button(description="New person"),
        x=widgets.IntSlider(0, min=0, max=0, description="x"),
        y=widgets.IntSlider(0, min=0, max=0, description="y"),
        size=widgets.IntSlider(1, min=1, max=1, description="size"),
        add=widgets.Button(description="Add box", button_style="success"),
        undo=widgets.Button(description="Undo", button_style="warning"),
        image=widgets.Image(format="png"),
        message=widgets.Label(),
        status=widgets.Label(),
    )

    def frame_index() -> int:
        return int(state.source.indices[c.position.value])

    def redraw(*_):
        if state.image is None:
            return
        c.frame_label.value = f"frame {frame_index()} ({c.position.value + 1}/{c.position.max + 1})"
        saved = store.boxes_for(c.video.value, frame_index())
        c.image.value = _png(draw_boxes(state.image, saved, (c.x.value, c.y.value, c.size.value)))
        c.status.value = store.summary(stills)

    def show_frame(*_):
        state.image = state.source.frame(frame_index())
        h, w = state.image.shape[:2]
        # Sliders follow the frame's size; ipywidgets pulls a value that is now too big down to the max.
        c.size.max = min(h, w)
        c.x.max, c.y.max = w - 1, h - 1
        if c.size.value == 1:
            c.size.value = min(h, w) // 4 or 1
        redraw()

    def load_video(*_):
        if state.source is not None:
            state.source.close()
        state.source = open_source(raw_root, c.video.value)
        c.position.value = 0
        c.position.max = max(len(state.source.indices) - 1, 0)
        show_frame()

    def step(delta):
        def go(_):
            c.position.value = min(max(c.position.value + delta, 0), c.position.max)
        return go

    def add(_):
        h, w = state.image.shape[:2]
        try:
            box = store.add(c.video.value, frame_index(), c.person.value, c.x.value, c.y.value, c.size.value,
                            frame_size=(h, w))
        except AnnotationError as e:
            c.message.value = f"Not added: {e}"
        else:
            c.message.value = f"Added person {box.person_id} at x={box.x}, y={box.y}, size={box.size}."
        redraw()

    def undo(_):
        box = store.undo()
        c.message.value = (f"Removed person {box.person_id} from {box.video!r} frame {box.frame}." if box
                           else "Nothing to undo.")
        redraw()

    def new_person(_):
        c.person.value = store.next_person_id()

    c.video.observe(load_video, names="value")
    c.position.observe(show_frame, names="value")
    for slider in (c.x, c.y, c.size):
        slider.observe(redraw, names="value")
    c.previous.on_click(step(-1))
    c.next.on_click(step(+1))
    c.add.on_click(add)
    c.undo.on_click(undo)
    c.new_person.on_click(new_person)
    load_video()

    ui = widgets.VBox([
        widgets.HBox([c.video, c.previous, c.position, c.next, c.frame_label]),
        widgets.HBox([c.person, c.new_person]),
        widgets.HBox([c.x, c.y, c.size]),
        widgets.HBox([c.add, c.undo]),
        c.image, c.message, c.status,
    ])
    ui.store, ui.controls = store, c
    return ui

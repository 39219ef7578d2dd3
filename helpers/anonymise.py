"""Apply a trained filter to images, folders of images and videos.

    python -m helpers.anonymise --filter results/S1/filter.keras photo.jpg frames/ clip.mp4 --out anonymised/

Every output keeps its input's name and size (videos: also frame rate and frame count). A folder's
images keep their relative paths under DIR/<folder name>/. Inputs are never overwritten. Every input and
the output folder are checked before anything is written; each file is written under a temporary name
and renamed when complete, so a file with an output's name is always whole. Exit code 2 on bad input.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.files import write_atomically
from helpers.images import to_uint8

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v"}
FOURCC = {".avi": "MJPG", ".mkv": "MJPG"}  # everything else is written as MPEG-4 part 2 ("mp4v")
MAX_PIXELS = 40_000_000  # larger images: split them into tiles first (memory grows with the image)


class InputError(ValueError):
    """An input (or an output folder) the command cannot use; the message names the file."""


def write_whole(path: Path, write) -> None:
    """files.write_atomically, with a failure to write reported as the command's error."""
    try:
        write_atomically(path, write)
    except OSError as err:
        raise InputError(f"{path}: cannot write it ({err.strerror or err}); check the free space and "
                         "permissions of the --out folder.") from err


def check_writable(out_dir: Path) -> None:
    import tempfile
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as err:
        raise InputError(f"{out_dir}: cannot write here ({err.strerror or err}); choose another --out "
                         "folder.") from err


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    kind: str  # "image" | "video"


def plan(inputs, out_dir) -> list[Job]:
    """Pair every input file with its output path; refuses anything that would overwrite an input."""
    out_dir = Path(out_dir)
    jobs = []
    for given in inputs:
        path = Path(given)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder.")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
            jobs += [Job(p, out_dir / path.resolve().name / p.relative_to(path), "image") for p in files]
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            jobs.append(Job(path, out_dir / path.name, "image"))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            jobs.append(Job(path, out_dir / path.name, "video"))
        else:
            raise InputError(f"{path}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))}) or a video "
                             f"({', '.join(sorted(VIDEO_SUFFIXES))}).")
    sources = {j.source.resolve() for j in jobs}
    targets = {}
    for job in jobs:
        target = job.target.resolve()
        if target in sources:
            raise InputError(f"{job.target} is an input file: choose an --out folder that does not hold the "
                             "inputs' names, inputs are never overwritten.")
        if target in targets:
            raise InputError(f"{targets[target]} and {job.source} would both be written to {job.target}: "
                             "give them different names or run them separately.")
        targets[target] = job.source
    return jobs


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]; greyscale, palette and alpha images become RGB (alpha is dropped),
    16-bit images are scaled from [0, 65535]."""
    import warnings
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS decides below
            img = Image.open(path)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise InputError(f"{path}: {img.width}x{img.height} pixels is more than {MAX_PIXELS:,}; split "
                                 "it into tiles and anonymise those.")
            if img.mode.startswith("I;16") or img.mode == "I":
                grey = np.asarray(img, dtype=np.float32) / 65535.0
                return np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=-1)
            return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{path}: cannot read this image ({err}).") from err


def write_image(image: np.ndarray, path: Path) -> None:
    from PIL import Image
    pixels = to_uint8(image)
    options = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    write_whole(path, lambda tmp: Image.fromarray(pixels).save(tmp, **options))


def open_video(path: Path):
    import cv2
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"{path}: cannot open this video.")
    ok, frame = capture.read()
    if not ok:
        capture.release()
        raise InputError(f"{path}: no frame could be decoded from this video.")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return capture


def video_info(path: Path) -> dict:
    """Frame rate, frame count and size as OpenCV reads them."""
    import cv2
    capture = open_video(path)
    info = {"fps": capture.get(cv2.CAP_PROP_FPS), "frames": int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
            "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}
    capture.release()
    return info


def anonymise_video(apply, source: Path, target: Path, batch_size: int = 8, progress=None) -> int:
    """Filter every frame of `source` into `target` at the same frame rate and size; returns frames written."""
    written = 0

    def write(tmp):
        nonlocal written
        written = _filter_video(apply, source, tmp, target, batch_size, progress)

    write_whole(target, write)
    return written


def _filter_video(apply, source: Path, tmp: Path, target: Path, batch_size, progress) -> int:
    import cv2
    capture = open_video(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(target.suffix.lower(), "mp4v"))
    writer = cv2.VideoWriter(str(tmp), fourcc, fps, (width, height))
    if not writer.isOpened():
        capture.release()
        raise InputError(f"{target}: OpenCV cannot write this video format.")
    written = 0

    def flush(frames):
        nonlocal written
        out = apply(np.stack(frames))
        for frame in out:
            writer.write(cv2.cvtColor(to_uint8(frame), cv2.COLOR_RGB2BGR))
        written += len(frames)
        if progress is not None:
            progress.update(len(frames))

    try:
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frame.shape[:2] != (height, width):
                raise InputError(f"{source}: frame {written + len(frames) + 1} is {frame.shape[1]}x"
                                 f"{frame.shape[0]}, the video {width}x{height}; frames must keep one size.")
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
            if len(frames) == batch_size:
                flush(frames)
                frames = []
        if frames:
            flush(frames)
    finally:
        capture.release()
        writer.release()
    return written


def filter_function(path):
    """The trained filter as a function of float32 (N, H, W, 3) images in [0, 1]."""
    from helpers.export import keras_function
    from helpers.models import load
    path = Path(path)
    if not path.exists():
        return keras_function(load(path))  # FileNotFoundError naming the notebook that writes it
    try:
        filt = load(path)
    except Exception as err:  # Keras raises many kinds for a file that is not a model
        raise InputError(f"{path}: not a filter saved by notebook 04 ({type(err).__name__}: {err}).") from err
    shapes = (getattr(filt, "input_shape", None), getattr(filt, "output_shape", None))
    if any(not isinstance(s, tuple) or len(s) != 4 or s[-1] != 3 for s in shapes):
        raise InputError(f"{path}: a model from {shapes[0]} to {shapes[1]}, not a filter (images with 3 "
                         "channels in and out); use the filter.keras of a notebook 04 run.")
    return keras_function(filt)


def run(filter_path, inputs, out_dir, batch_size: int = 8, show_progress: bool = True) -> list[Job]:
    """Check every input first, then filter them all; returns what was written."""
    from tqdm.auto import tqdm
    jobs = plan(inputs, out_dir)
    total = 0
    apply = filter_function(filter_path)
    for job in jobs:  # fail on a bad file before spending minutes on the good ones
        if job.kind == "image":
            read_image(job.source)
            total += 1
        else:
            total += max(video_info(job.source)["frames"], 1)
    check_writable(Path(out_dir))
    with tqdm(total=total, unit="frame", disable=not show_progress) as bar:
        for job in jobs:
            bar.set_postfix_str(job.source.name)
            if job.kind == "image":
                write_image(apply(read_image(job.source)[None])[0], job.target)
                bar.update(1)
            else:
                anonymise_video(apply, job.source, job.target, batch_size, bar)
    return jobs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.anonymise", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, video files")
    parser.add_argument("--filter", required=True, help="a trained filter, e.g. results/S1/filter.keras")
    parser.add_argument("--out", required=True, help="folder for the anonymised copies")
    parser.add_argument("--batch-size", type=int, default=8, help="video frames filtered at once")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        jobs = run(args.filter, args.inputs, args.out, args.batch_size, not args.quiet)
    except (InputError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(jobs)} file(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

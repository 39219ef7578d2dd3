"""Files written whole: under a hidden temporary name in the target's folder, renamed when complete, so
a file with a result's name is never half-written (a rename within one file system is atomic)."""
from __future__ import annotations

import os
from pathlib import Path


def partial_name(path: Path) -> Path:
    """Where `path` is written until it is complete: same folder and suffix (image and video writers pick
    the format from it), hidden, and per process."""
    return path.with_name(f".{path.stem}.partial{os.getpid()}{path.suffix}")


def write_atomically(path, write) -> Path:
    """write(temporary path), then rename it to `path`; on any failure the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

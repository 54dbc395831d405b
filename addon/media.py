"""The media folder layout and safe file helpers.

Layout: <root>/<safe shot name>/take_001.mp4, take_002.mp4 ...
Every write goes to a partial sibling (`take_001.mp4.part`) and is renamed into place only
when complete, so a crash or a cancel never leaves a half-written take under a real name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Collection, Iterable, Iterator

from .services.base import JobControl

PARTIAL_SUFFIX = ".part"
_MAX_NAME = 64
_TAKE_RE = re.compile(r"^take_(\d+)\.", re.IGNORECASE)
_KEEP = frozenset("-_.")
# Names Windows refuses whatever the extension; a folder or file called "con" breaks the project there.
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)] + [f"lpt{i}" for i in range(1, 10)]
)


def safe_name(text: str) -> str:
    """A file-system-safe, stable, non-empty name for `text`.

    Letters, digits and marks of any script survive (a shot named in Japanese stays readable);
    separators, control characters and anything Windows rejects become "_". Long names are cut
    and suffixed with a short hash of the full text so two long names stay distinct.
    """
    text = unicodedata.normalize("NFC", text)
    chars = [c if c in _KEEP or unicodedata.category(c)[0] in "LNM" else "_" for c in text]
    name = re.sub(r"_+", "_", "".join(chars)).strip("._-")
    if not name:
        return "untitled"
    if name.split(".")[0].lower() in _WINDOWS_RESERVED:
        name = "_" + name
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        name = name[: _MAX_NAME - 9].rstrip("._-") + "-" + digest
    return name


TRASH = "_trash"  # deleted takes wait here, inside the media folder, until the director empties it
INPUTS = "_inputs"  # pictures, video and sound taken from the timeline for a shot's requests


def shot_dir(root: Path, shot_name: str) -> Path:
    """The folder holding one shot's takes (not created here)."""
    name = safe_name(shot_name)
    return Path(root) / (name + "_shot" if name in (TRASH, INPUTS) else name)


def trash_dir(root: Path, shot_name: str) -> Path:
    """Where a shot's deleted takes go."""
    return Path(root) / TRASH / shot_dir(root, shot_name).name


def inputs_dir(root: Path, shot_name: str) -> Path:
    return Path(root) / INPUTS / shot_dir(root, shot_name).name


def _take_numbers(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return [int(m.group(1)) for m in map(_TAKE_RE.match, os.listdir(folder)) if m]


def next_take_path(root: Path, shot_name: str, ext: str = ".mp4", reserved: Collection[Path] = ()) -> Path:
    """The next unused take path of a shot: take_001.mp4, take_002.mp4 ...

    Numbers follow the highest existing take (any extension, partial files included, the shot's
    trash too), so a deleted take's number is never reused. `reserved` holds paths promised to jobs still running
    (their files do not exist yet), so two jobs of one shot never get the same name.
    """
    folder = shot_dir(root, shot_name)
    numbers = _take_numbers(folder) + _take_numbers(trash_dir(root, shot_name))
    numbers += [int(m.group(1)) for p in map(Path, reserved) if p.parent == folder and (m := _TAKE_RE.match(p.name))]
    ext = ext if ext.startswith(".") else "." + ext
    return folder / f"take_{max(numbers, default=0) + 1:03d}{ext}"


def partial_path(dest: Path) -> Path:
    """Where `dest` is written until it is complete."""
    dest = Path(dest)
    return dest.with_name(dest.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def atomic_write(dest: Path) -> Iterator[Path]:
    """Yield the partial path to write; rename it to `dest` on success, remove it on any error or cancel."""
    dest = Path(dest)
    part = partial_path(dest)
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield part
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def stream_to_file(
    chunks: Iterable[bytes], dest: Path, ctl: JobControl | None = None, total: int | None = None
) -> int:
    """Write `chunks` to `dest` atomically, checking for cancel between chunks; return the byte count.

    With `total` (the expected size) it reports download progress through `ctl`, at most once per percent.
    """
    written = 0
    reported = -1
    with atomic_write(dest) as part, open(part, "wb") as f:
        for chunk in chunks:
            if ctl is not None:
                ctl.check()
            f.write(chunk)
            written += len(chunk)
            if ctl is not None and total:
                percent = min(100, written * 100 // total)
                if percent > reported:
                    reported = percent
                    ctl.report("downloading", percent / 100, "")
    return written


def content_key(path: Path) -> str:
    """The sha256 hex digest of the file's content, read in chunks (takes can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or below it, after resolving "..", symlinks and case (on Windows)."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def free_path(target: Path) -> Path:
    """`target` if free, else the next free name: a take gets the next take number, anything else a counter."""
    if not target.exists():
        return target
    if _TAKE_RE.match(target.name):
        number = max(_take_numbers(target.parent)) + 1
        return target.with_name(f"take_{number:03d}{''.join(target.suffixes)}")
    candidates = (target.with_name(f"{target.stem}_{i}{target.suffix}") for i in itertools.count(2))
    return next(c for c in candidates if not c.exists())


def move_file(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` (its folder made), across drives too."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        # Another drive (a temp folder on tmpfs, the project on a disk): copy completely, then drop the source.
        with atomic_write(dst) as part:
            shutil.copy2(src, part)
        src.unlink()


def move_tree(src_root: Path, dst_root: Path) -> dict[Path, Path]:
    """Move every file under `src_root` to the same relative place under `dst_root`; return {old: new}.

    Used when an unsaved .blend is first saved: its takes leave the temporary folder for the folder
    next to the .blend, and the caller relinks strips through the mapping. Nothing is overwritten: on a
    name clash the file gets the next free name (the mapping says which). Partial files are in-flight
    downloads and stay where they are. Only folders this emptied are removed. All or nothing: when a
    file cannot be moved (a read-only or full disk), the files moved so far go back and the error is raised.
    """
    # Keys keep the caller's spelling of src_root (not resolved) so they match the paths strips hold.
    src_root, dst_root = Path(src_root).absolute(), Path(dst_root).absolute()
    if not src_root.is_dir() or src_root.resolve() == dst_root.resolve():
        return {}
    if is_inside(dst_root, src_root):
        raise ValueError(f"cannot move {src_root} into itself ({dst_root})")
    moved: dict[Path, Path] = {}
    try:
        for folder, _dirs, files in os.walk(src_root):
            for name in sorted(files):
                if name.endswith(PARTIAL_SUFFIX):
                    continue
                src = Path(folder) / name
                dst = free_path(dst_root / src.relative_to(src_root))
                move_file(src, dst)
                moved[src] = dst
    except OSError:
        move_back(moved, dst_root)
        raise
    remove_empty_folders(moved, src_root)  # the root itself belongs to the caller and stays
    return moved


def move_back(moved: dict[Path, Path], dst_root: Path) -> None:
    """Undo `move_tree` (its mapping): every file goes back, folders it made under `dst_root` go."""
    for src, dst in moved.items():
        move_file(dst, src)
    remove_empty_folders({dst: dst for dst in moved.values()}, Path(dst_root).absolute())


def remove_empty_below(root: Path) -> None:
    """Remove the empty folders below `root`, and `root` itself when it is left empty."""
    for folder, _dirs, _files in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def remove_empty_folders(moved: dict[Path, Path], root: Path) -> None:
    """Remove the folders below `root` that the moved files (the mapping's keys) have left empty."""
    emptied = {src.parent for src in moved}
    # Deepest first, so a parent is tried after its children; rmdir refuses folders that still hold anything.
    folders = {p for d in emptied for p in (d, *d.parents) if p != root and p.is_relative_to(root)}
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()

"""Where a .blend's takes live: a folder next to it, or a temporary one until it is saved."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

import bpy

from .. import journal, media
from . import compat

_UNSAVED = Path(tempfile.gettempdir()) / f"shotline-unsaved-{uuid.uuid4().hex[:12]}"
_first_save = None  # (moved files, target folder, relinked paths) from save_pre until the save ends


def unsaved_root() -> Path:
    return _UNSAVED


def _folder_for(blend_filepath: str, scene) -> Path:
    folder = scene.shotline.media_folder or "//shotline"
    return Path(bpy.path.abspath(folder, start=os.path.dirname(blend_filepath)))


def root(scene) -> Path:
    """The media folder of `scene` (one subfolder per shot inside)."""
    if not bpy.data.filepath:
        return _UNSAVED
    return _folder_for(bpy.data.filepath, scene)


def user_folder() -> Path:
    """Shotline's own folder in the user's Blender configuration (kept across sessions and files)."""
    package = __package__.rpartition(".addon.blend")[0]
    if package.startswith("bl_ext."):
        return Path(bpy.utils.extension_path_user(package, create=True))
    return Path(bpy.utils.user_resource('CONFIG', path="shotline", create=True))


def journal_file(scene) -> Path:
    """Where the jobs of `scene` are journalled: in its media folder, or for an unsaved file in the
    user's Shotline folder (the temporary folder may be gone after a crash)."""
    folder = root(scene) if bpy.data.filepath else user_folder()
    return folder / journal.FILE_NAME


def check_writable(folder: Path) -> None:
    """Raise ValueError now if takes cannot be written into `folder` (made here when missing)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"Cannot write takes into {folder}: {err.strerror or err}") from None


def blend_path(path) -> str:
    """How to store `path` in the .blend: relative to it when it is saved, else absolute."""
    path = os.path.abspath(path)
    if bpy.data.filepath:
        return bpy.path.relpath(path)
    return path


def adopt_unsaved(blend_filepath: str) -> str:
    """On the first save (save_pre), move the takes from the temporary folder next to the .blend
    and relink them, so the file is written with paths relative to it. `first_save_done` keeps
    or undoes this once Blender has written the file or failed to. Returns a problem for the
    director ("" when all is well); on a problem nothing is moved or relinked."""
    global _first_save
    _first_save = None
    if bpy.data.filepath or not _UNSAVED.is_dir():
        return ""
    # one temporary folder holds every scene's takes: they go to the window scene's media folder
    scene = bpy.context.scene or bpy.data.scenes[0]
    target = _folder_for(blend_filepath, scene)
    try:
        moved = media.move_tree(_UNSAVED, target)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        return f"The takes stay in the temporary folder {_UNSAVED}: cannot move them to {target} ({reason})"
    start = os.path.dirname(blend_filepath)
    _first_save = (moved, target, _relink({str(a): str(b) for a, b in moved.items()}, start))
    return ""


def first_save_done(saved: bool) -> None:
    """After the first save: drop the emptied temporary folder, or (the save failed) put every
    take back where it was, with its old path."""
    global _first_save
    if _first_save is None:
        return
    moved, target, relinked = _first_save
    _first_save = None
    if saved:
        _remove_if_empty(_UNSAVED)  # still holds a take being made: that one settles when placed
        return
    for owner, name, old_path in relinked:
        setattr(owner, name, old_path)
    media.move_back(moved, target)


def _relink(moved: dict[str, str], start: str) -> list[tuple[object, str, str]]:
    """Point strips, take records, trashed takes and shot inputs at their moved files; returns
    (owner, property, old path) per change."""
    changed = []

    def relink(owner, name: str = "filepath") -> None:
        path = getattr(owner, name)
        new = moved.get(os.path.abspath(bpy.path.abspath(path))) if path else None
        if new:
            changed.append((owner, name, path))
            setattr(owner, name, bpy.path.relpath(new, start=start))

    for scene in bpy.data.scenes:
        ed = scene.sequence_editor
        for strip in compat.strips_all(ed) if ed else ():
            if strip.type == 'MOVIE':
                relink(strip)
            if not hasattr(strip, "shotline"):
                continue
            for take in strip.shotline.takes:
                relink(take)
            for name in _SHOT_FILES:  # inputs taken from the timeline are written under the media folder
                relink(strip.shotline, name)
        for trashed in scene.shotline.trash if hasattr(scene, "shotline") else ():
            relink(trashed)
    return changed


_SHOT_FILES = ("reference_image", "last_frame_image", "source_video", "audio")


def settle(path: Path, scene, shot_name: str, reserved=()) -> Path:
    """Where a finished take is placed from: the scene's media folder. A take made for an unsaved
    file that has been saved since (or for another media folder) moves there first; when it
    cannot, it is placed from where it is."""
    path = Path(path)
    folder = root(scene)
    if media.is_inside(path, folder):
        return path
    dest = media.next_take_path(folder, shot_name, ext=path.suffix, reserved=reserved)
    try:
        media.move_file(path, dest)
    except OSError:
        return path
    if media.is_inside(path, _UNSAVED) and bpy.data.filepath:
        _remove_if_empty(_UNSAVED)
    return dest


def _remove_if_empty(folder: Path) -> None:
    """Remove `folder` and the empty folders in it (a cancelled job's shot folder), if nothing else is left."""
    for parent, _dirs, _files in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(parent)

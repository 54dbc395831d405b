"""Where a .blend's takes live: a folder next to it, or a temporary one until it is saved."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import bpy

from .. import media
from . import compat

_UNSAVED = Path(tempfile.gettempdir()) / f"shotline-unsaved-{uuid.uuid4().hex[:12]}"


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


def blend_path(path) -> str:
    """How to store `path` in the .blend: relative to it when it is saved, else absolute."""
    path = os.path.abspath(path)
    if bpy.data.filepath:
        return bpy.path.relpath(path)
    return path


def adopt_unsaved(blend_filepath: str) -> dict[str, str]:
    """On the first save, move takes from the temporary folder next to the .blend and relink them."""
    if bpy.data.filepath or not _UNSAVED.is_dir():
        return {}
    # one temporary folder holds every scene's takes: they go to the window scene's media folder
    scene = bpy.context.scene or bpy.data.scenes[0]
    target = _folder_for(blend_filepath, scene)
    moved = {str(a): str(b) for a, b in media.move_tree(_UNSAVED, target).items()}
    start = os.path.dirname(blend_filepath)

    def relinked(path: str) -> str | None:
        new = moved.get(os.path.abspath(bpy.path.abspath(path))) if path else None
        return bpy.path.relpath(new, start=start) if new else None

    for scene in bpy.data.scenes:
        ed = scene.sequence_editor
        for strip in compat.strips_all(ed) if ed else ():
            if strip.type == 'MOVIE' and (new := relinked(strip.filepath)):
                strip.filepath = new
            if hasattr(strip, "shotline"):
                for take in strip.shotline.takes:
                    if new := relinked(take.filepath):
                        take.filepath = new
    return moved

"""A shot's takes: what made each one, stepping through them, deleting to the trash, reusing settings.

A deleted take's file is moved to the media folder's trash and listed in the scene's trash; only
Empty Trash removes files from disk, and only the files listed there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import bpy

from .. import media
from .. import timing
from . import compat, mediafolder, placement, shots

# The shot's fields a take remembers, so Reuse Settings can put them back.
_SETTINGS = ("service", "model", "prompt", "negative_prompt", "options", "fit", "reference_image",
             "last_frame_image", "source_video", "audio", "video_strip", "song_audio", "cast", "workflow", "pins")
_FRAME_SOURCE = ("source", "strip", "frame", "as_shown")


def settings_of(shot, seed: int) -> str:
    """The shot's settings now, as a take records them (JSON)."""
    props = shot.shotline
    data = {name: getattr(props, name) for name in _SETTINGS}
    data["seed"] = seed
    data["references"] = [r.filepath for r in props.references]
    for end in ("first_frame", "last_frame"):
        data[end] = {name: getattr(getattr(props, end), name) for name in _FRAME_SOURCE}
    return json.dumps(data, ensure_ascii=False)


def reuse_settings(shot, index: int) -> None:
    """Put the settings that made take `index` back on the shot, its seed fixed."""
    take = shot.shotline.takes[index]
    props = shot.shotline
    try:
        data = json.loads(take.settings) if take.settings else {}
    except ValueError:
        data = {}
    # takes made before settings were recorded still know these
    data.setdefault("service", take.service)
    data.setdefault("model", take.model)
    data.setdefault("prompt", take.prompt)
    data.setdefault("negative_prompt", take.negative_prompt)
    for name in _SETTINGS:
        if name in data:
            setattr(props, name, data[name])
    if "references" in data:
        props.references.clear()
        for path in data["references"]:
            props.references.add().filepath = path
    for end in ("first_frame", "last_frame"):
        for name, value in data.get(end, {}).items():
            setattr(getattr(props, end), name, value)
    props.random_seed = False
    props.seed = take.seed


def use_take(scene, shot, index: int) -> placement.Placed:
    """Show another of the shot's takes in its take strip."""
    take = shot.shotline.takes[index]
    placed = placement.place_take(scene, shot, take.filepath, timing.rate(take.fps) if take.fps > 0 else None)
    shot.shotline.active_take = index
    return placed


def step(scene, shot, delta: int) -> int:
    """Show the next (delta 1) or previous (-1) take, wrapping around; returns its index."""
    count = len(shot.shotline.takes)
    index = (shot.shotline.active_take + delta) % count
    use_take(scene, shot, index)
    return index


def missing(take) -> bool:
    return not os.path.isfile(bpy.path.abspath(take.filepath))


def _in_use_elsewhere(scene, shot, index: int, path: str) -> bool:
    """Another take record (of any shot) pointing at the same file."""
    for other in shots.shots(scene):
        for i, take in enumerate(other.shotline.takes):
            if (other, i) != (shot, index) and os.path.abspath(bpy.path.abspath(take.filepath)) == path:
                return True
    return False


def delete(scene, shot, index: int) -> str:
    """Remove take `index` from the shot: its file goes to the trash, the take strip shows another
    take (or goes when none is left). Returns what happened, for the report."""
    props = shot.shotline
    take = props.takes[index]
    if props.locked and index == props.active_take:
        raise ValueError(f"{shot.name} is locked on take {index + 1}: unlock it to delete its final take")
    path = os.path.abspath(bpy.path.abspath(take.filepath))
    note = f"Take {index + 1} of {shot.name} deleted"
    if os.path.isfile(path) and not _in_use_elsewhere(scene, shot, index, path):
        trash = media.trash_dir(mediafolder.root(scene), shot.name)
        target = media.free_path(trash / os.path.basename(path))
        media.move_file(Path(path), target)
        record = scene.shotline.trash.add()
        record.filepath, record.original = mediafolder.blend_path(target), take.filepath
        record.shot, record.shot_id, record.take = shot.name, props.shot_id, _record(take)
        record.deleted = time.strftime("%Y-%m-%d %H:%M")
        note += f"; its file is in the trash ({target.parent.name}/{target.name})"
    active = props.active_take
    props.takes.remove(index)
    if index < active:
        props.active_take = active - 1
    elif index == active:
        _show_another(scene, shot, min(index, len(props.takes) - 1))
    return note


def _record(take) -> str:
    """Every field of a take, as JSON."""
    names = [p.identifier for p in take.bl_rna.properties if p.identifier not in ("rna_type", "name")]
    return json.dumps({name: getattr(take, name) for name in names}, ensure_ascii=False)


def restore(scene, index: int) -> str:
    """Put trashed take `index` back on its shot, its file back in the shot's folder; returns a note."""
    record = scene.shotline.trash[index]
    shot = shots.by_id(scene, record.shot_id)
    if shot is None:
        raise ValueError(f"The shot \"{record.shot}\" of this take is gone: the file stays in the trash")
    source = Path(bpy.path.abspath(record.filepath))
    if not source.is_file():
        raise ValueError(f"The trashed file {source.name} is gone")
    original = bpy.path.abspath(record.original) if record.original else ""
    target = media.free_path(Path(original) if original else
                             media.shot_dir(mediafolder.root(scene), shot.name) / source.name)
    media.move_file(source, target)
    take = shot.shotline.takes.add()
    for name, value in json.loads(record.take or "{}").items():
        if hasattr(take, name):
            setattr(take, name, value)
    take.filepath = mediafolder.blend_path(target)
    scene.shotline.trash.remove(index)
    return f"{shot.name}: take {len(shot.shotline.takes)} restored from the trash"


def heal_after_undo(scene) -> int:
    """Undo and redo bring take records back or take them away, but files stay where they are: put
    each file where the records now say it is. Returns how many files moved."""
    root = mediafolder.root(scene)
    moved = 0
    used = set()
    for shot in shots.shots(scene):
        for take in shot.shotline.takes:
            path = Path(os.path.abspath(bpy.path.abspath(take.filepath)))
            used.add(path)
            if path.is_file():
                continue
            found = _in_trash(media.trash_dir(root, shot.name), path.name, take.content_key, take.size)
            if found is not None:  # the delete was undone
                media.move_file(found, path)
                moved += 1
    for record in scene.shotline.trash:
        path = Path(bpy.path.abspath(record.filepath))
        original = Path(os.path.abspath(bpy.path.abspath(record.original)))
        if not path.is_file() and original.is_file() and original not in used:  # the delete was redone
            media.move_file(original, path)
            moved += 1
    return moved


def _in_trash(folder: Path, name: str, content_key: str, size: int) -> Path | None:
    """The trashed file of a take: by its name, else (renamed on a clash) by its content; only
    files of its size are read (undo runs this for every take whose file is missing)."""
    if not folder.is_dir():
        return None
    named = folder / name
    others = sorted(p for p in folder.iterdir()
                    if p.is_file() and p != named and (not size or p.stat().st_size == size))
    for candidate in ([named] if named.is_file() else []) + (others if content_key else []):
        if not content_key or media.content_key(candidate) == content_key:
            return candidate
    return None


def _show_another(scene, shot, index: int) -> None:
    """After the shown take was deleted: show take `index`, or remove the take strip and its loops."""
    props = shot.shotline
    if index >= 0:
        use_take(scene, shot, index)
        return
    ed = scene.sequence_editor
    for strip in [shots.take_strip(scene, shot), *shots.loop_strips(scene, shot)]:
        if strip is not None:
            compat.strips(ed).remove(strip)
    props.active_take = -1
    props.status, props.status_message = 'NONE', "All takes deleted"


def trash_size(scene) -> tuple[int, int]:
    """How many trashed files are still there, and their bytes."""
    count = size = 0
    for record in scene.shotline.trash:
        path = bpy.path.abspath(record.filepath)
        if os.path.isfile(path):
            count, size = count + 1, size + os.path.getsize(path)
    return count, size


def empty_trash(scene) -> int:
    """Remove from disk the files of this scene's deleted takes (only those, only inside the
    trash folder); returns how many files were removed."""
    trash_root = mediafolder.root(scene) / media.TRASH
    removed = 0
    for record in scene.shotline.trash:
        path = Path(bpy.path.abspath(record.filepath))
        if path.is_file() and media.is_inside(path, trash_root):
            path.unlink()
            removed += 1
    scene.shotline.trash.clear()
    media.remove_empty_below(trash_root)
    return removed


def check_limit(shot, running: int, adding: int = 1) -> None:
    """Raise ValueError when `adding` more takes (with `running` still being made) would pass the
    shot's take limit."""
    props = shot.shotline
    if not props.take_limit:
        return
    have = len(props.takes) + running
    if have + adding <= props.take_limit:
        return
    made = f"{have} of {props.take_limit} takes{' (with those generating)' if running else ''}"
    if have >= props.take_limit:
        raise ValueError(f"Take limit reached: {made}. Pick one and lock the shot, delete a take, or raise the limit")
    raise ValueError(f"Take limit: {made}; {adding} more would pass it. Ask for fewer or raise the limit")

"""Take files on disk: which are missing, and pointing takes (and the strips showing them) at
the files found again after a project folder was moved or takes were renamed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from .. import relink as finder
from . import compat, mediafolder, placement, shots


@dataclass
class Relinked:
    """What `relink` did, per take: (shot, take index, path)."""

    found: list[tuple[object, int, str]] = field(default_factory=list)  # the path now stored
    not_found: list[tuple[object, int, str]] = field(default_factory=list)  # the path still missing
    ambiguous: list[tuple[object, int, str]] = field(default_factory=list)  # several files could be it
    searched: int = 0  # files looked at
    notes: list[str] = field(default_factory=list)  # limits the search met


def _absolute(scene, path: str) -> str:
    return os.path.normpath(bpy.path.abspath(path, library=scene.library))


def missing(scene) -> list[tuple[object, int, object, str]]:
    """Every take of the scene's shots whose file is not there: (shot, index, take, absolute path)."""
    lost = []
    for shot in shots.shots(scene):
        for index, take in enumerate(shot.shotline.takes):
            if take.filepath:
                path = _absolute(scene, take.filepath)
                if not os.path.isfile(path):
                    lost.append((shot, index, take, path))
    return lost


def default_roots() -> list[Path]:
    """Where moved takes are looked for unless the director says: the .blend's folder and its parent."""
    if not bpy.data.filepath:
        return []
    folder = Path(bpy.data.filepath).parent
    return [folder, folder.parent]


def relink(scene, roots) -> Relinked:
    """Find the scene's missing take files under `roots` (by name, then by content) and point the
    takes at them; a take strip or loop strip showing a relinked take gets the new file too."""
    lost = missing(scene)
    report = Relinked()
    if not lost:
        return report
    lost_paths = {path for *_, path in lost}
    in_use = {_absolute(scene, t.filepath) for s in shots.shots(scene) for t in s.shotline.takes if t.filepath}
    wanted = [finder.Wanted(path, take.content_key, take.size or None) for _shot, _index, take, path in lost]
    result = finder.search(wanted, roots, in_use=in_use - lost_paths)
    report.searched, report.notes = result.visited, result.notes
    moved: dict[str, str] = {}
    for i, (shot, index, take, old) in enumerate(lost):
        if i in result.paths:
            take.filepath = moved[old] = mediafolder.blend_path(result.paths[i])
            report.found.append((shot, index, take.filepath))
        elif i in result.ambiguous:
            report.ambiguous.append((shot, index, old))
        else:
            report.not_found.append((shot, index, old))
    for shot in dict.fromkeys(shot for shot, _index, _path in report.found):
        try:
            _show_moved(scene, shot, moved)
        except (placement.PlacementError, RuntimeError) as err:  # RuntimeError: Blender refused the retiming
            report.notes.append(f"{shot.name}: {err}")
    return report


def _show_moved(scene, shot, moved: dict[str, str]) -> None:
    """Swap the file of the shot's strips that showed a moved take: their modifiers, transform and
    retiming stay. Only a clip of another length (a take matched by name alone) is fitted again."""
    strips = [s for s in (shots.take_strip(scene, shot), *shots.loop_strips(scene, shot))
              if s is not None and s.type == 'MOVIE']
    refit = False
    for strip in strips:
        new = moved.get(_absolute(scene, strip.filepath))
        if new:
            frames = compat.content_frames(strip)
            strip.filepath = new
            refit |= compat.content_frames(strip) != frames
    if refit:
        placement.refit(scene, shot)

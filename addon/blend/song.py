"""The song: which sound strip it is, its analysis (cached in the .blend) and its grid on the timeline."""

from __future__ import annotations

import json
import os

import bpy

from .. import beats, layout, media, timing
from . import compat, placement, shots

MARKER_PREFIX = "♪ "  # Shotline's markers; a user's markers never start with it by accident


class SongError(Exception):
    """A song that cannot be analysed; the message is for the director."""


def strip(scene):
    """The sound strip the timing follows: the one named in the settings, else the longest."""
    ed = scene.sequence_editor
    if not ed:
        return None
    sounds = [s for s in compat.strips_all(ed) if s.type == 'SOUND']
    named = next((s for s in sounds if s.name == scene.shotline.song), None)
    if named is not None:
        return named
    return max(sounds, key=lambda s: compat.span(s)[1] - compat.span(s)[0], default=None)


def on_timeline(scene, sound_strip) -> timing.SongPlacement:
    """Where the song file plays on the timeline (its start, trims and the scene rate)."""
    left, right = compat.span(sound_strip)
    return timing.SongPlacement(compat.content_start(sound_strip), left, right, shots.scene_fps(scene))


def file_path(sound_strip) -> str:
    sound = sound_strip.sound
    if sound is None:
        raise SongError(f"\"{sound_strip.name}\" has no sound")
    if sound.packed_file is not None:
        raise SongError(f"\"{sound_strip.name}\" is packed into the .blend: unpack it to analyse it")
    path = bpy.path.abspath(sound.filepath, library=sound.library)
    if not os.path.isfile(path):
        raise SongError(f"The song file is missing: {bpy.path.basename(path)}")
    return path


def decode(path: str):
    """Samples (n, channels) float32 and rate, with Blender's own audio library: every format Blender plays."""
    import aud

    try:
        sound = aud.Sound(path)
        return sound.data(), int(sound.specs[0])
    except aud.error as err:
        raise SongError(f"Blender cannot decode {bpy.path.basename(path)}: {err}") from None


def analysis(scene) -> beats.Analysis | None:
    """The stored analysis of the scene's song (with the user's corrections), if any."""
    raw = scene.shotline.song_analysis
    if not raw:
        return None
    try:
        return beats.Analysis.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        return None  # an older or damaged cache: analyse again


def store(scene, result: beats.Analysis) -> None:
    scene.shotline.song_analysis = json.dumps(result.to_dict())


def analyze(scene, force: bool = False) -> tuple[beats.Analysis, bool]:
    """Analyse the song, or reuse the cached analysis when the file's content is unchanged.

    Returns (analysis, reused). The cache key is the file's content, so a renamed or moved
    file keeps its analysis and corrections, and an edited one is analysed afresh.
    """
    sound_strip = strip(scene)
    if sound_strip is None:
        raise SongError("No sound strip: add the song first")
    path = file_path(sound_strip)
    key = media.content_key(path)
    settings = scene.shotline
    cached = analysis(scene)
    if cached is not None and settings.song_key == key and not force:
        return cached, True
    samples, rate = decode(path)
    result = beats.analyze(samples, rate)
    if cached is not None and settings.song_key == key:
        result = beats.Analysis(result.duration, result.tracked_beats, result.tracked_downbeats,
                                result.tracked_beats_per_bar, result.sections, cached.corrections)
    store(scene, result)
    settings.song_key = key
    return result, False


def frames(scene, times) -> list[int]:
    """Scene frames nearest to song-file times that are audible (inside the song strip's handles)."""
    sound_strip = strip(scene)
    place = on_timeline(scene, sound_strip)
    return sorted({place.nearest_frame(t) for t in times if place.audible(t)})


def remove_markers(scene) -> int:
    ours = [m for m in scene.timeline_markers if m.name.startswith(MARKER_PREFIX)]
    for marker in ours:
        scene.timeline_markers.remove(marker)
    return len(ours)


def refresh_markers(scene, result: beats.Analysis) -> None:
    """Move Shotline's markers onto a corrected grid, per beat or per bar as they were."""
    ours = [m.name[len(MARKER_PREFIX):] for m in scene.timeline_markers if m.name.startswith(MARKER_PREFIX)]
    if ours:
        add_markers(scene, result, every_beat=all(name.isdigit() for name in ours))


def add_markers(scene, result: beats.Analysis, every_beat: bool = False) -> int:
    """Replace Shotline's markers with one per bar (or per beat); the user's markers are left alone."""
    remove_markers(scene)
    sound_strip = strip(scene)
    place = on_timeline(scene, sound_strip)
    bar_starts = [a for a, _b in beats.bars(result)]
    if every_beat:
        named = [(t, f"{MARKER_PREFIX}{i + 1}") for i, t in enumerate(result.beats)]
    else:
        named = [(t, f"{MARKER_PREFIX}bar {i + 1}") for i, t in enumerate(bar_starts)]
    count = 0
    for t, name in named:
        if place.audible(t):
            scene.timeline_markers.new(name, frame=place.nearest_frame(t))
            count += 1
    return count


def lay_out(scene, slots: list[layout.Slot], channel: int) -> list:
    """Text-strip shots for the slots, edges on the frames nearest their beat times.

    A slot is cut to the song strip's audible range (skipped when nothing of it is heard);
    a channel already used there sends the shot to the next free channel above, so nothing
    is overwritten.
    """
    place = on_timeline(scene, strip(scene))
    ed = scene.sequence_editor
    made = []
    for slot in slots:
        left = max(place.nearest_frame(slot.start), place.left)
        right = min(place.nearest_frame(slot.end), place.right)
        if right <= left:
            continue
        free = placement.free_channel(scene, channel, left, right)
        shot = compat.new_effect(compat.strips(ed), f"Shot {len(shots.shots(scene)) + 1:02d}", 'TEXT', free,
                                 left, right - left)
        shot.text = slot.prompt or slot.label
        shots.make_shot(shot, placeholder=slot.label)
        shot.shotline.prompt = slot.prompt
        made.append(shot)
    return made

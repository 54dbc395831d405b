"""The song: which sound strip it is, its analysis (cached in the .blend) and its grid on the timeline.

Analysing a long song takes a second or two, so Analyze Song runs it on a worker thread: the
worker hashes, decodes (aud lets go of the GIL while it decodes) and analyses; the main thread
lands the result in `pump_analysis()`, from a timer in Blender, directly in tests and scripts
(`run_until_analysed`), as `runtime` does for jobs. `analyze()` is the synchronous way.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import bpy
import numpy as np
from bpy.app.handlers import persistent

from .. import beats, layout, media, timing
from . import compat, identity, placement, shots

MARKER_PREFIX = "♪ "  # Shotline's markers; a user's markers never start with it by accident
PUMP_INTERVAL = 0.1
DECODE_SHARE = 0.45  # of the progress bar: hashing and decoding take 0.4-0.5 of a 5-minute song's time
PIECE_S = 10  # seconds of audio per decoding step: 10-25 ms holding the GIL
EXACT_PIECES = (".wav", ".wave")  # pieces decoded by seeking join sample-exactly (see decode)
NAME_KEY = "song"  # the picker's storage: the chosen strip's name, all a file saved before the song role holds

log = logging.getLogger("shotline")


class SongError(Exception):
    """A song that cannot be analysed; the message is for the director."""


# -- which strip is the song ---------------------------------------------------------------------------------------

def _sounds(scene) -> list:
    ed = scene.sequence_editor
    return [s for s in compat.strips_all(ed) if s.type == 'SOUND'] if ed else []


def chosen(scene):
    """The sound strip chosen as the song, if one was. The choice is a role on the strip, so a
    renamed song stays the song. A copy of the strip carries the role too, until identity.resolve
    makes it a plain strip: the original is told from it as a shot is from its copies."""
    sounds = _sounds(scene)
    marked = [s for s in sounds if s.shotline.role == 'SONG']
    if len(marked) > 1:
        copied = {c.name for c in copies(scene)}
        marked = [s for s in marked if s.name not in copied] or marked
    if marked:
        return marked[0]
    legacy = scene.shotline.get(NAME_KEY)
    return next((s for s in sounds if s.name == legacy), None) if legacy else None


def strip(scene):
    """The sound strip the timing follows: the chosen one, else the longest."""
    return chosen(scene) or max(_sounds(scene), key=lambda s: compat.span(s)[1] - compat.span(s)[0], default=None)


def copies(scene) -> list:
    """Copies of the song strip that still carry its role: not followed (see chosen)."""
    return [copy for copy, _original in identity.find_copies([scene]) if copy.shotline.role == 'SONG']


def choose(scene, sound_strip) -> None:
    """Make `sound_strip` the song (None: back to the longest sound strip)."""
    for s in _sounds(scene):
        if s.shotline.role == 'SONG':
            s.shotline.role, s.shotline.owner = 'NONE', ""
    if sound_strip is not None:
        sound_strip.shotline.role = 'SONG'
        shots.claim(sound_strip)  # the name it is chosen under tells it from its copies (identity.py)
    show_name(scene)


def keep_choice(scene) -> None:
    """A choice files saved before the song role hold by name becomes the role; the picker shows the song's name."""
    found = chosen(scene)
    if found is not None and found.shotline.role != 'SONG':
        choose(scene, found)
    else:
        show_name(scene)


def _chosen_name(scene) -> str:
    found = chosen(scene)
    return found.name if found else ""


def name_shown_is_stale(scene) -> bool:
    return scene.shotline.get(NAME_KEY, "") != _chosen_name(scene)


def show_name(scene) -> None:
    """Keep the picker showing the song's current name (a renamed song stays the song). Written as an ID
    property, so the picker's update callback does not run again. The picker is a plain string because
    Python get/set callbacks on it crashed Blender 4.5 while worker threads ran."""
    if name_shown_is_stale(scene):
        scene.shotline[NAME_KEY] = _chosen_name(scene)


def choose_named(scene, name: str) -> None:
    """The song picker: a sound strip's name, or "" for the longest. Another strip's name changes nothing."""
    picked = next((s for s in _sounds(scene) if s.name == name), None)
    if picked is not None or not name:
        choose(scene, picked)
    else:
        show_name(scene)


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


def decode(path: str, progress: Callable[[float], None] | None = None):
    """Samples (n, channels) float32 and rate, with Blender's own audio library: every format Blender plays.

    No bpy: runs on the worker thread. aud holds the GIL while it decodes (0.2-0.5 s for a 5-minute song),
    so with `progress` (the worker's) a WAV file is decoded PIECE_S at a time, the GIL free in between: its
    pieces join sample-exactly (measured on 16/24-bit, float, extensible WAVs at 22-96 kHz; an MP3's, Ogg's,
    AAC's, even a FLAC's may not: those are decoded in one go).
    progress(fraction) is called between pieces; what it raises stops the decoding. The specs are read first:
    on Blender 4.5 `data()` of a file aud cannot read aborts the process instead of raising.
    """
    import aud

    try:
        sound = aud.Sound(path)
        rate, channels = int(sound.specs[0]), int(sound.specs[1])
        if progress is None or not path.lower().endswith(EXACT_PIECES):
            return sound.data(), rate
        total, step = sound.length, PIECE_S * rate
        samples = np.empty((total + step, channels), dtype=np.float32)  # `length` can be a sample short
        filled = 0
        while filled + step <= len(samples):
            progress(filled / max(total, 1))
            piece = sound.limit(filled / rate, (filled + step) / rate).data()
            samples[filled:filled + len(piece)] = piece
            filled += len(piece)
            if len(piece) < step:
                return samples[:filled], rate
        return sound.data(), rate  # `length` was far off: decode in one go
    except aud.error as err:
        raise SongError(f"Blender cannot decode {os.path.basename(path)}: {err}") from None


# -- the analysis and its cache ------------------------------------------------------------------------------------

# Why a scene's last background analysis failed, shown in the Music panel; keyed by the scene's
# session_uid (a new scene or file with the same scene name is another scene).
_problems: dict[int, str] = {}


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


def _song_file(scene) -> tuple[object, str, str]:
    """(song strip, its file, the content key of the stored analysis or "" when there is none)."""
    sound_strip = strip(scene)
    if sound_strip is None:
        raise SongError("No sound strip: add the song first")
    known = scene.shotline.song_key if analysis(scene) is not None else ""
    return sound_strip, file_path(sound_strip), known


def _run(path: str, known_key: str, force: bool,
         progress: Callable[[float], None] | None = None) -> tuple[str, beats.Analysis | None]:
    """(content key, fresh analysis), or (key, None) when the file is the one already analysed. No bpy:
    runs on the worker thread, which passes progress(fraction of the whole; see decode). The cache key is the
    file's content, so a renamed or moved file keeps its analysis and corrections, and an edited one is
    analysed afresh."""
    try:
        key = media.content_key(path)
    except OSError as err:
        raise SongError(f"Cannot read the song file {os.path.basename(path)}: {err.strerror}") from None
    if key == known_key and not force:
        return key, None
    if progress is None:
        return key, beats.analyze(*decode(path))
    samples, rate = decode(path, lambda done: progress(DECODE_SHARE * done))
    return key, beats.analyze(samples, rate, progress=lambda done: progress(DECODE_SHARE + (1 - DECODE_SHARE) * done))


def _land(scene, key: str, fresh: beats.Analysis | None) -> tuple[beats.Analysis, bool]:
    """Store a fresh analysis, keeping the corrections made on the same file. Main thread."""
    _problems.pop(scene.session_uid, None)
    cached = analysis(scene)
    settings = scene.shotline
    if fresh is None:
        if cached is None or settings.song_key != key:  # undone or replaced while it was checked
            raise SongError("The stored analysis changed meanwhile: analyse the song again")
        return cached, True
    if cached is not None and settings.song_key == key:
        fresh = beats.Analysis(fresh.duration, fresh.tracked_beats, fresh.tracked_downbeats,
                               fresh.tracked_beats_per_bar, fresh.sections, cached.corrections)
    store(scene, fresh)
    settings.song_key = key
    return fresh, False


def analyze(scene, force: bool = False) -> tuple[beats.Analysis, bool]:
    """Analyse the song now, or reuse the cached analysis when the file's content is unchanged.
    Returns (analysis, reused). Blocks: for scripts; Analyze Song in the UI uses start_analysis()."""
    _strip, path, known = _song_file(scene)
    key, fresh = _run(path, known, force)
    return _land(scene, key, fresh)


# -- analysing on a worker thread ----------------------------------------------------------------------------------

class _Cancelled(Exception):
    """Raised in the worker's progress callback: stops its decoding or analysis."""


@dataclass(eq=False)
class Analysing:
    """A song analysis on a worker thread. The worker writes progress, key, result and error; the main
    thread reads them and lands the result (Blender's data is touched there only)."""

    scene_name: str
    song_name: str
    path: str
    known_key: str
    force: bool
    markers: str  # 'KEEP', 'BARS' or 'BEATS': markers to put on the grid once it lands
    progress: float = 0.0
    key: str = ""
    result: beats.Analysis | None = None
    error: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def _report(self, fraction: float) -> None:
        if self.cancel.is_set():
            raise _Cancelled
        self.progress = fraction

    def work(self) -> None:
        try:
            self.key, self.result = _run(self.path, self.known_key, self.force, self._report)
        except _Cancelled:
            pass
        except SongError as err:
            self.error = str(err)
        except Exception as err:  # a bug reaches the director as a message, and the log
            log.exception("analysing %s", self.path)
            self.error = f"The analysis of {os.path.basename(self.path)} failed: {err}"
        finally:
            self.done.set()


_task: Analysing | None = None
_workers: list[threading.Thread] = []  # a cancelled worker may still be finishing a decode


def start_analysis(scene, force: bool = False, markers: str = 'KEEP') -> Analysing:
    """Start analysing the scene's song on a worker thread and return at once; pump_analysis() lands it."""
    global _task
    if _task is not None:
        raise SongError(f"Already analysing \"{_task.song_name}\": wait for it or cancel it")
    sound_strip, path, known = _song_file(scene)
    _problems.pop(scene.session_uid, None)
    _task = Analysing(scene.name, sound_strip.name, path, known, force, markers)
    # A daemon, so a quit never waits for a whole analysis; _stop() cancels and joins it at exit and on unregister.
    worker = threading.Thread(target=_task.work, name="shotline-song", daemon=True)
    worker.start()
    _workers[:] = [w for w in _workers if w.is_alive()] + [worker]
    if not bpy.app.timers.is_registered(_tick):
        # Persistent, and dropped by _stop(): the bpy 4.5 module hangs at exit after a file load removed a timer.
        bpy.app.timers.register(_tick, first_interval=PUMP_INTERVAL, persistent=True)
    return _task


def analysing(scene) -> Analysing | None:
    """The analysis running for the scene, if any."""
    return _task if _task is not None and _task.scene_name == scene.name else None


def problem(scene) -> str:
    """Why the scene's last background analysis failed ("" when it did not)."""
    return _problems.get(scene.session_uid, "")


def cancel_analysis() -> None:
    """Stop the running analysis, if any (its worker stops at its next progress report)."""
    global _task
    task, _task = _task, None
    if task is not None:
        task.cancel.set()
        compat.redraw_sequencers()


def pump_analysis() -> None:
    """Main thread: show the progress, and land a finished analysis in its scene (store it, put markers)."""
    global _task
    task = _task
    if task is None:
        return
    if task.done.is_set():
        _task = None
        scene = bpy.data.scenes.get(task.scene_name)
        if scene is not None and task.error:
            _problems[scene.session_uid] = task.error
        elif scene is not None:
            try:
                if _song_file(scene)[1] != task.path:
                    raise SongError("The song changed while it was analysed: analyse it again")
                result, _reused = _land(scene, task.key, task.result)
                if task.markers != 'KEEP':
                    add_markers(scene, result, every_beat=task.markers == 'BEATS')
            except SongError as err:
                _problems[scene.session_uid] = str(err)
            else:
                _undo_step(f"Shotline: analysed {task.song_name}")
    compat.redraw_sequencers()


def run_until_analysed(timeout: float, interval: float = PUMP_INTERVAL) -> None:
    """Pump until the running analysis has landed, as the timer does in Blender: for tests and scripts,
    where timers never fire."""
    deadline = time.monotonic() + timeout
    while _task is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the song is still being analysed after {timeout:.0f} s")
        pump_analysis()
        time.sleep(interval)


def _tick() -> float | None:
    pump_analysis()
    return PUMP_INTERVAL if _task is not None else None


def _undo_step(message: str) -> None:
    """The analysis lands in a timer, outside any operator: make it its own undo step."""
    if not bpy.app.background:
        bpy.ops.ed.undo_push(message=message)


def _stop(timeout: float = 5.0) -> None:
    """Cancel the analysis, drop its timer (the bpy 4.5 module hangs at exit with one registered) and wait for
    the workers (each stops at its next progress report)."""
    cancel_analysis()
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    for worker in _workers:
        worker.join(timeout)
    _workers.clear()


@persistent
def _load_pre(*_args) -> None:
    """Another file is opening: its scenes are not the ones the analysis was for."""
    cancel_analysis()


def register() -> None:
    bpy.app.handlers.load_pre.append(_load_pre)
    atexit.register(_stop)


def unregister() -> None:
    if _load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_load_pre)
    atexit.unregister(_stop)
    _stop()
    _problems.clear()


# -- the grid on the timeline --------------------------------------------------------------------------------------

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


# -- shots on the grid ---------------------------------------------------------------------------------------------

@dataclass
class LayOutPlan:
    """What laying out slots does to the timeline. A shot Shotline made that the director has not used
    (its placeholder text only: no prompt, no takes, no job) is replaced where a slot falls; a shot with
    the director's work on it is never removed, and the slots over it are left to it (no second shot
    over the same cut)."""

    cuts: list[tuple[layout.Slot, int, int]]  # slots to make, with their frames
    replaced: list  # Shotline's untouched shots that go
    kept: list  # the director's shots that keep their place
    kept_slots: int  # slots not made because a kept shot is there


def _overlaps(strip_, left: int, right: int) -> bool:
    s_left, s_right = compat.span(strip_)
    return s_left < right and left < s_right


def plan_lay_out(scene, slots: list[layout.Slot]) -> LayOutPlan:
    """Frames of each slot, cut to the song strip's audible range (a slot heard nowhere is dropped), and
    which shots there are replaced or kept. Shots on any channel count: a shot's frames are the cut."""
    place = on_timeline(scene, strip(scene))
    audible = []
    for slot in slots:
        left = max(place.nearest_frame(slot.start), place.left)
        right = min(place.nearest_frame(slot.end), place.right)
        if right > left:
            audible.append((slot, left, right))
    there = [s for s in shots.shots(scene) if any(_overlaps(s, left, right) for _slot, left, right in audible)]
    replaced = [s for s in there if s.shotline.placeholder and shots.is_untouched(s)]
    kept = [s for s in there if s not in replaced]
    cuts = [cut for cut in audible if not any(_overlaps(s, cut[1], cut[2]) for s in kept)]
    return LayOutPlan(cuts, replaced, kept, len(audible) - len(cuts))


def lay_out(scene, slots: list[layout.Slot], channel: int) -> list:
    """Text-strip shots for the slots, edges on the frames nearest their beat times (see plan_lay_out).

    A channel already used there by another strip sends the shot to the next free channel above, so
    nothing is overwritten.
    """
    plan = plan_lay_out(scene, slots)
    ed = scene.sequence_editor
    for old in plan.replaced:
        compat.strips(ed).remove(old)
    made = []
    for slot, left, right in plan.cuts:
        free = placement.free_channel(scene, channel, left, right)
        shot = compat.new_effect(compat.strips(ed), f"Shot {len(shots.shots(scene)) + 1:02d}", 'TEXT', free,
                                 left, right - left)
        shot.text = slot.prompt or slot.label
        shots.make_shot(shot, placeholder=slot.label)
        shot.shotline.prompt = slot.prompt
        made.append(shot)
    return made


def move_shot(scene, shot, left: int, right: int) -> None:
    """Give a shot new frames and fit its take strip to them (a take never shows past its shot).
    Raises placement.PlacementError (or RuntimeError from Blender's retiming) for the take."""
    compat.set_span(shot, left, right)
    placement.refit(scene, shot)

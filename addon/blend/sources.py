"""Where a shot's inputs come from: files, or the timeline itself.

A first or last frame may be a still on disk, a frame of any strip, or the neighbouring shot's
active take where it meets this shot (continuity); the source video may be the live footage
under the shot; the audio may be the song under the shot (lip-sync). Pictures are taken on
Generate (one frame renders in tens of milliseconds) and named by their content, so a job still
uploading an older picture never sees it replaced. A video segment is rendered a few frames per
pump (see runtime) and a song slice cut on the job's worker: both are made before anything is sent.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import bpy

from .. import media
from ..services.base import JobControl
from . import compat, frames, mediafolder, segment, shots, song, song_slice


@dataclass
class Inputs:
    """The files a shot's requests use (absolute paths, "" for none), and what must be made first."""

    first_frame: str = ""
    last_frame: str = ""
    source_video: str = ""
    audio: str = ""
    exporting: segment.SegmentExport | None = None  # frames still to render on the main thread
    song_cut: Callable[[], None] | None = None  # writes the song slice; safe on a worker thread
    # Before they are made, checks look at what they are made from (the song file, the footage's file).
    stand_ins: dict[str, str] = field(default_factory=dict)
    # the variations of a shot share their inputs: the first job's worker makes them, the others wait
    _making: threading.Lock = field(default_factory=threading.Lock)
    _made: bool = False

    @property
    def to_make(self) -> bool:
        return self.exporting is not None or self.song_cut is not None

    @property
    def prepare(self) -> Callable[[JobControl], None] | None:
        """What the job's worker runs before sending; None when every file exists already."""
        if not self.to_make:
            return None

        def make(ctl: JobControl) -> None:
            with self._making:
                if self._made:
                    return
                if self.song_cut is not None:
                    self.song_cut()
                ctl.check()
                if self.exporting is not None:
                    self.exporting.encode(ctl)
                self._made = True
        return make

    def cancel(self) -> None:
        if self.exporting is not None:
            self.exporting.cancel()


def gather(scene, shot, service) -> Inputs:
    """The shot's inputs for `service`; raises ValueError with what to fix when one cannot be had."""
    props = shot.shotline
    folder = media.inputs_dir(mediafolder.root(scene), shot.name)
    inputs = Inputs(
        first_frame=_frame(scene, shot, props.first_frame, props.reference_image, "first", folder),
        last_frame=_frame(scene, shot, props.last_frame, props.last_frame_image, "last", folder),
        source_video=shots.input_file(props.source_video, "source video"),
        audio=shots.input_file(props.audio, "audio file"),
    )
    left, right = compat.span(shot)
    if props.video_strip:
        strip = _strip(scene, props.video_strip, "source video")
        dest = folder / f"video-{uuid.uuid4().hex[:12]}.mp4"
        width, height = shots.output_size(scene)
        inputs.exporting = segment.SegmentExport(scene, strip, left, right, dest, width, height)
        inputs.source_video = str(dest)
        inputs.stand_ins["source_video"] = _media_file(strip)
    if props.song_audio:
        song_strip = song.strip(scene)
        if song_strip is None:
            raise ValueError("Song Under the Shot needs the song: add a sound strip (or pick it in the Project panel)")
        dest = folder / f"song-{left}-{right}-{uuid.uuid4().hex[:8]}.wav"
        inputs.song_cut = song_slice.slice_job(scene, song_strip, left, right, dest)
        inputs.audio = str(dest)
        try:
            inputs.stand_ins["audio"] = song.file_path(song_strip)
        except song.SongError as err:
            raise ValueError(str(err)) from None
    return inputs


def _media_file(strip) -> str:
    """The file a movie or image strip shows (its first image for a sequence)."""
    if strip.type == 'IMAGE':
        return bpy.path.abspath(os.path.join(strip.directory, strip.elements[0].filename))
    return bpy.path.abspath(getattr(strip, "filepath", ""))


def _strip(scene, name: str, what: str):
    strip = compat.strips_all(scene.sequence_editor).get(name)
    if strip is None:
        raise ValueError(f"The {what} strip \"{name}\" is not on the timeline (renamed or deleted?)")
    return strip


def _frame(scene, shot, source, file_value: str, end: str, folder: Path) -> str:
    """The picture for the shot's first or last frame (`end`), as an absolute path ("" for none)."""
    label = f"{end}-frame image"
    if source.source == 'FILE':
        return shots.input_file(file_value, label)
    if source.source == 'STRIP':
        strip = _strip(scene, source.strip, f"{end}-frame")
        return _take_picture(scene, shot, [strip], source.frame, source.as_shown, folder, end)
    neighbour, frame = neighbour_frame(scene, shot, source.source)
    covering = [s for s in [shots.take_strip(scene, neighbour), *shots.loop_strips(scene, neighbour)]
                if s is not None and _covers(s, frame)]
    if not covering:
        raise ValueError(f"The {'previous' if source.source == 'PREVIOUS' else 'next'} shot \"{neighbour.name}\" "
                         "has no take yet: generate it first, or choose another picture")
    return _take_picture(scene, shot, covering, frame, source.as_shown, folder, end)


def strip_at(scene, frame: int, shot):
    """The topmost picture at `frame` that is not the shot's own (its take, loops, compare): live
    footage, a still, another shot's take. None when there is nothing else."""
    own = {shot.shotline.shot_id} if shot.shotline.shot_id else set()
    found = [s for s in compat.strips_all(scene.sequence_editor)
             if s.type != 'SOUND' and not s.mute and _covers(s, frame) and s.shotline.role != 'SHOT'
             and not (s.shotline.role in {'TAKE', 'LOOP', 'COMPARE'} and s.shotline.shot_id in own)]
    return max(found, key=lambda s: s.channel, default=None)


def neighbour_frame(scene, shot, which: str):
    """The shot before (`PREVIOUS`) or after (`NEXT`) `shot` in time and the scene frame where they
    meet: the previous shot's last frame, the next shot's first. Shots on the same channel win ties."""
    left, right = compat.span(shot)
    if which == 'PREVIOUS':
        before = [s for s in shots.shots(scene) if s != shot and compat.span(s)[1] <= left]
        if not before:
            raise ValueError(f"No shot before \"{shot.name}\" to continue from")
        found = max(before, key=lambda s: (compat.span(s)[1], s.channel == shot.channel))
        return found, compat.span(found)[1] - 1
    after = [s for s in shots.shots(scene) if s != shot and compat.span(s)[0] >= right]
    if not after:
        raise ValueError(f"No shot after \"{shot.name}\" to lead into")
    found = min(after, key=lambda s: (compat.span(s)[0], s.channel != shot.channel))
    return found, compat.span(found)[0]


def _covers(strip, frame: int) -> bool:
    left, right = compat.span(strip)
    return left <= frame < right


def _above(scene, shot, strips: list, frame: int) -> list:
    """What the sequencer shows over `strips` at `frame` (a grade, a title), not this shot's own strips."""
    top = max(s.channel for s in strips)
    own = shot.shotline.shot_id
    return [s for s in compat.strips_all(scene.sequence_editor)
            if s.channel > top and not s.mute and s.type != 'SOUND' and _covers(s, frame)
            and s.shotline.role != 'COMPARE' and not (s.shotline.shot_id == own and s.shotline.role != 'NONE')]


def _take_picture(scene, shot, strips: list, frame: int, as_shown: bool, folder: Path, end: str) -> str:
    """Render the picture into `folder`, named by its content: as shown, the strips with what is
    stacked over them (the shots beneath, placeholders, are left out); else the first one's source."""
    if not any(_covers(s, frame) for s in strips):
        raise ValueError(f"\"{strips[0].name}\" does not show anything at frame {frame}")
    folder.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(suffix=".png", prefix=f".{end}-", dir=folder)
    os.close(handle)
    try:
        if as_shown:
            frames.render_frame(scene, frame, Path(scratch), only=strips + _above(scene, shot, strips, frame))
        else:
            frames.source_frame(scene, strips[0], frame, Path(scratch))
        target = folder / f"{end}-{media.content_key(Path(scratch))[:16]}.png"
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return str(target)

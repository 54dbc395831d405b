"""Inputs taken from the timeline: a strip's own source picture at a frame, the live footage under a
shot as a video, the song under a shot as a WAV.

Pictures are checked by the frame code burned into animatic clips: the source frame taken must be
the one the sequencer shows at that frame (rendered uncached, see vse.render_frame). The song slice
is checked sample by sample against the song decoded with Blender's own audio library (aud).
"""

from __future__ import annotations

import math
import wave
from fractions import Fraction
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image

from shotline.addon import encode, framecode, probe
from shotline.addon.blend import compat, frames, placement, segment, song, song_slice
from shotline.addon.services.base import Cancelled, JobControl
from vse import add_shot, make_clip, render_frame, set_fps, shown_source_frame

NTSC_30 = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "24": make_clip(folder, 40, Fraction(24), size=(256, 144)),
        "30": make_clip(folder, 40, Fraction(30), size=(256, 144), seed=2),
    }


def _movie(scene, path: Path, start: int, channel: int = 2):
    return compat.strips(scene.sequence_editor).new_movie(name="footage", filepath=str(path), channel=channel,
                                                          frame_start=start, fit_method='FIT')


def _picture(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def _source_code(scene, strip, frame: int, out: Path) -> int | None:
    return framecode.read(_picture(frames.source_frame(scene, strip, frame, out)))


# -- a strip's own source picture ----------------------------------------------------------------------------------

def test_source_frame_of_a_movie_strip_is_its_own_picture(scene, clips, tmp_path):
    set_fps(scene, Fraction(25))
    strip = _movie(scene, clips["24"], 5)
    compat.set_span(strip, 8, 40)  # trimmed at both ends
    out = tmp_path / "source.png"
    for frame in (8, 9, 20, 39):
        picture = _picture(frames.source_frame(scene, strip, frame, out))
        assert picture.shape == (144, 256, 3)  # the clip's size, not the scene's 320x180
        assert framecode.read(picture) == shown_source_frame(scene, frame, tmp_path / "shown.png") == frame - 5
    scenes = set(bpy.data.scenes.keys())
    bare = _picture(frames.source_frame(scene, strip, 20, out))
    # what the strip adds to its picture is left out, and the strip is left as the director set it
    strip.modifiers.new("Bright", 'BRIGHT_CONTRAST').bright = 40
    strip.transform.offset_x, strip.transform.rotation, strip.crop.min_x = 30, 0.3, 20
    strip.use_flip_x, strip.color_saturation, strip.blend_alpha = True, 0.2, 0.5
    strip.mute = True
    assert np.array_equal(_picture(frames.source_frame(scene, strip, 20, out)), bare)
    assert strip.mute and strip.use_flip_x and strip.transform.offset_x == 30 and not strip.modifiers[0].mute
    assert set(bpy.data.scenes.keys()) == scenes  # the scene copy it rendered is gone


def test_source_frame_of_a_retimed_take_in_a_29_97_scene(scene, clips, tmp_path):
    set_fps(scene, NTSC_30)
    shot = add_shot(scene, "Чай ə", 10, 45)
    take = placement.place_take(scene, shot, str(clips["24"])).strip
    assert compat.content_frames(take) != 40  # retimed: a 24 fps clip at its real speed
    for frame in (10, 11, 12, 13, 27, 40, 54):
        shown = shown_source_frame(scene, frame, tmp_path / "shown.png")
        assert shown is not None
        assert _source_code(scene, take, frame, tmp_path / "source.png") == shown, f"frame {frame}"


def _still(path: Path, code: int, size=(200, 120)) -> Path:
    image = Image.new("RGB", size, (40, 90, 160))
    framecode.draw(image, code)
    image.save(path)
    return path


def test_source_frame_of_image_strips(scene, tmp_path):
    set_fps(scene, Fraction(24))
    strips = compat.strips(scene.sequence_editor)
    still = strips.new_image(name="still", filepath=str(_still(tmp_path / "still.png", 777)), channel=2,
                             frame_start=3, fit_method='FIT')
    compat.set_span(still, 3, 30)
    picture = _picture(frames.source_frame(scene, still, 25, tmp_path / "a.png"))
    assert picture.shape == (120, 200, 3)
    assert framecode.read(picture) == 777

    names = [_still(tmp_path / f"seq_{i:03d}.png", 100 + i, size=(160, 96)).name for i in range(6)]
    sequence = strips.new_image(name="sequence", filepath=str(tmp_path / names[0]), channel=3, frame_start=40)
    for name in names[1:]:
        sequence.elements.append(name)
    for offset in range(6):
        picture = _picture(frames.source_frame(scene, sequence, 40 + offset, tmp_path / "b.png"))
        assert picture.shape == (96, 160, 3)
        assert framecode.read(picture) == 100 + offset


def test_source_frame_refuses_what_has_no_source_picture(scene, clips, tmp_path):
    shot = add_shot(scene, "colour", 1, 20)
    with pytest.raises(ValueError, match="movie or image strip"):
        frames.source_frame(scene, shot, 5, tmp_path / "x.png")
    strip = _movie(scene, clips["24"], 30)
    with pytest.raises(ValueError, match="pick a frame from 30 to 69"):
        frames.source_frame(scene, strip, 70, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_render_frame_of_only_a_strip_equals_the_timeline_with_that_strip_alone(scene, clips, tmp_path):
    set_fps(scene, Fraction(25))
    strip = _movie(scene, clips["30"], 1)
    strip.transform.offset_x, strip.color_saturation = 25, 0.5
    cover = add_shot(scene, "cover", 1, 40, channel=5)  # a Color strip over the footage
    other = _movie(scene, clips["24"], 1, channel=3)
    other.mute = True
    only = _picture(frames.render_frame(scene, 12, tmp_path / "only.png", only=[strip]))
    assert not strip.mute and not cover.mute and other.mute  # put back as they were
    compat.strips(scene.sequence_editor).remove(cover)
    compat.strips(scene.sequence_editor).remove(other)
    alone = _picture(frames.render_frame(scene, 12, tmp_path / "alone.png"))
    assert np.array_equal(only, alone)
    assert framecode.read(only) is None  # moved by its transform: the code is off its corner...
    assert only[:, :25].max() < 10  # ...by the 25 pixels its offset says, black there


# -- the live footage under a shot ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scene_fps, clip, retimed", [(NTSC_30, "24", True), (Fraction(25), "30", False)],
                         ids=["29.97-retimed-24", "25-plain-30"])
def test_segment_of_footage_under_a_shot(scene, clips, tmp_path, scene_fps, clip, retimed):
    set_fps(scene, scene_fps)
    if retimed:  # another shot's take used as footage
        footage = placement.place_take(scene, add_shot(scene, "source", 4, 40), str(clips[clip])).strip
    else:
        footage = _movie(scene, clips[clip], 4)
    shot = add_shot(scene, "v2v", 9, 14, channel=6)
    left, right = compat.span(shot)
    dest = tmp_path / "media" / "segment.mp4"
    export = segment.SegmentExport(scene, footage, left, right, dest, 320, 180)
    steps = 0
    while not export.step(budget_s=0.0):  # one frame a step
        steps += 1
        assert 0 < export.progress < 1
    assert steps + 1 == right - left and export.progress == 1
    export.encode(JobControl())
    info = probe.read_clip(dest)
    assert (info.frames, info.fps, info.width, info.height) == (right - left, scene_fps, 320, 180)
    assert [p.name for p in dest.parent.iterdir()] == ["segment.mp4"]  # no partial file
    assert not list(Path(encode.tempfile.gettempdir()).glob(f"{encode.SCRATCH_PREFIX}segment-*"))

    shot.mute = True  # the shot's Color strip covers the footage
    shown = [shown_source_frame(scene, frame, tmp_path / "shown.png") for frame in range(left, right)]
    viewer = bpy.data.scenes.new("viewer")
    try:
        viewer.render.resolution_x, viewer.render.resolution_y = 320, 180
        viewer.sequence_editor_create()
        set_fps(viewer, scene_fps)
        _movie(viewer, dest, 1)
        sent = [shown_source_frame(viewer, 1 + i, tmp_path / "sent.png") for i in range(right - left)]
    finally:
        bpy.data.scenes.remove(viewer)
    assert None not in shown
    assert sent == shown


def test_segment_refuses_footage_that_does_not_cover_the_shot(scene, clips, tmp_path):
    footage = _movie(scene, clips["24"], 10)  # frames 10-49
    with pytest.raises(ValueError, match="covers frames 10-49, the shot 5-24"):
        segment.SegmentExport(scene, footage, 5, 25, tmp_path / "x.mp4", 320, 180)


def test_cancelled_segment_leaves_nothing(scene, clips, tmp_path):
    footage = _movie(scene, clips["24"], 1)
    export = segment.SegmentExport(scene, footage, 1, 6, tmp_path / "x.mp4", 320, 180)
    export.step(budget_s=0.0)
    scratch = export._scratch
    assert len(list(scratch.iterdir())) == 1
    export.cancel()
    assert not scratch.exists()
    with pytest.raises(Cancelled):
        export.encode(JobControl())
    assert not (tmp_path / "x.mp4").exists()


# -- the song under a shot -----------------------------------------------------------------------------------------

RATE = 48000


def _counting_song(path: Path, seconds: float) -> Path:
    """A stereo WAV whose samples count: left is the index modulo 2**15, right the index over 2**15."""
    index = np.arange(int(seconds * RATE))
    pcm = np.stack([index % 32768, index // 32768], axis=1).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


@pytest.mark.parametrize("scene_fps", [NTSC_30, Fraction(25)], ids=["29.97", "25"])
def test_lip_sync_slice_is_sample_exact_for_a_late_trimmed_song(scene, tmp_path, scene_fps):
    """The lip-sync audio slice is sample-exact against the decoded song, for a song strip that starts
    late and is trimmed, in a 29.97 fps scene (and at 25)."""
    set_fps(scene, scene_fps)
    path = _counting_song(tmp_path / "song ə.wav", 5)
    song_strip = compat.strips(scene.sequence_editor).new_sound("song", str(path), 1, 37)  # starts late
    compat.set_span(song_strip, 45, 120)  # its first 8 and its last frames trimmed
    shot = add_shot(scene, "sing", 30, 100, channel=3)  # starts before the song's trim, ends after it
    left, right = compat.span(shot)
    dest = tmp_path / "inputs" / "slice.wav"
    write = song_slice.slice_job(scene, song_strip, left, right, dest)
    assert not dest.exists()  # nothing is written on the main thread
    write()

    got, audible, index = check_slice(path, dest, scene_fps, left, right, 37, (45, 120))
    # and the counter says the same: the first audible sample is the one 8 frames into the file
    p, q, rate = scene_fps.numerator, scene_fps.denominator, RATE
    first = np.argmax(audible)
    counted = round(got[first, 0] * 32768) + 32768 * round(got[first, 1] * 32768)
    assert counted == index[first] and abs(counted - Fraction(8 * rate * q, p)) < 1
    assert audible.sum() in (math.floor(Fraction(75 * rate * q, p)), math.ceil(Fraction(75 * rate * q, p)))


def check_slice(song_path: Path, slice_path: Path, scene_fps: Fraction, left: int, right: int, start: int,
                handles: tuple[int, int]):
    """Compare a written slice with the song decoded by aud, sample for sample. Sample j of the slice
    is the moment left/fps + j/rate; it plays the file's sample floor((moment - start/fps) * rate),
    audible between the song strip's handles. Returns the slice, its audible mask and source indexes."""
    source, rate = song.decode(str(song_path))
    got, got_rate = song.decode(str(slice_path))
    assert got_rate == rate and got.shape[1] == source.shape[1]
    p, q = scene_fps.numerator, scene_fps.denominator
    length = math.ceil(Fraction((right - left) * rate * q, p))
    assert len(got) == length
    j = np.arange(length)
    moment = Fraction(left * rate * q, p) + j  # in samples since frame 0 (exact: j is whole)
    audible = np.array([Fraction(handles[0] * rate * q, p) <= m < Fraction(handles[1] * rate * q, p)
                        for m in moment])
    index = j + math.floor(Fraction((left - start) * rate * q, p))
    expected = np.zeros_like(got)
    expected[audible] = source[index[audible]]
    assert np.array_equal(got, expected)
    assert not got[~audible].any()
    return got, audible, index


def test_lip_sync_slice_refuses_a_missing_song(scene, tmp_path):
    path = _counting_song(tmp_path / "gone.wav", 1)
    song_strip = compat.strips(scene.sequence_editor).new_sound("song", str(path), 1, 1)
    path.unlink()
    with pytest.raises(ValueError, match="missing"):
        song_slice.slice_job(scene, song_strip, 1, 10, tmp_path / "slice.wav")

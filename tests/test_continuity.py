"""A shot's inputs taken from the timeline, through Generate: the previous shot's last frame
(continuity), the next shot's first, a frame of live footage as shown or from its source, the
footage under the shot (video to video) and the song under the shot (lip-sync)."""

from __future__ import annotations

import base64
import io
from fractions import Fraction
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image

from shotline.addon import framecode, probe
from shotline.addon.blend import compat, frames, runtime, shots
from shotline.addon.services.animatic import AnimaticService
from test_timeline_inputs import _counting_song, check_slice
from vse import add_service, add_shot, make_clip, op, render_frame, select, set_fps


class Recording(AnimaticService):
    """The animatic, keeping every request it is sent (the files it was given are read at once)."""

    id, label = "recording", "Recording animatic"

    def __init__(self):
        super().__init__()
        self.received = []

    def submit(self, request, ctl):
        pictures = {name: np.asarray(Image.open(path).convert("RGB"))
                    for name in ("reference_image", "last_frame_image") if (path := getattr(request, name))}
        self.received.append((request, pictures))
        if request.source_video:  # the service restyles it: the file must be whole when it is sent
            self.sent_video = probe.read_clip(Path(request.source_video))
        return super().submit(request, ctl)


@pytest.fixture(params=[Fraction(30000, 1001), Fraction(24000, 1001), Fraction(25)], ids=["29.97", "23.976", "25"])
def timeline(scene, monkeypatch, request):
    set_fps(scene, request.param)
    scene.render.resolution_x, scene.render.resolution_y = 128, 72
    scene.view_settings.view_transform = 'Standard'  # a video editor's scene (the Video Editing template's)
    service = add_service(monkeypatch, Recording())
    first = add_shot(scene, "Первый", 1, 30, channel=2)
    second = add_shot(scene, "Ikinci", 31, 24, channel=2)
    for shot in (first, second):
        shot.shotline.service = service.id
    return scene, service, first, second


def _generate(scene, shot) -> None:
    select(scene, [shot])
    scene.sequence_editor.active_strip = shot
    assert op(scene, "shotline_generate") == {'FINISHED'}
    runtime.run_until_idle(300, interval=0.02)


def test_a_shot_continuing_from_the_previous_shot_receives_exactly_its_last_frame(timeline, tmp_path):
    scene, service, first, second = timeline
    _generate(scene, first)
    second.shotline.first_frame.source = 'PREVIOUS'
    _generate(scene, second)
    request, pictures = service.received[-1]
    assert request.reference_image and len(second.shotline.takes) == 1
    last = compat.span(first)[1] - 1
    rendered = render_frame(scene, last, tmp_path / "last.png")
    assert np.array_equal(pictures["reference_image"], rendered), "pixel for pixel the frame the viewer sees last"
    assert framecode.read(rendered) == framecode.read(pictures["reference_image"])
    # a grade the director put over the cut (an adjustment strip above the takes) is part of that picture
    grade = compat.new_effect(compat.strips(scene.sequence_editor), "grade", 'ADJUSTMENT', 9, 1, 80)
    balance = grade.modifiers.new("warm", 'COLOR_BALANCE')
    balance.color_balance.gain = (1.3, 1.0, 0.7)
    _generate(scene, second)
    _request, graded = service.received[-1]
    assert np.array_equal(graded["reference_image"], render_frame(scene, last, tmp_path / "graded.png"))
    assert not np.array_equal(graded["reference_image"], rendered)
    compat.strips(scene.sequence_editor).remove(grade)
    # a new take of the previous shot: the next Generate continues from that one
    previous_picture = pictures["reference_image"]
    _generate(scene, first)
    _generate(scene, second)
    _request, pictures = service.received[-1]
    assert not np.array_equal(pictures["reference_image"], previous_picture)
    assert np.array_equal(pictures["reference_image"], render_frame(scene, last, tmp_path / "last2.png"))


def test_a_shot_can_end_on_the_next_shots_first_frame(timeline, tmp_path):
    scene, service, first, second = timeline
    _generate(scene, second)
    first.shotline.last_frame.source = 'NEXT'
    _generate(scene, first)
    _request, pictures = service.received[-1]
    rendered = render_frame(scene, compat.span(second)[0], tmp_path / "next.png")
    assert np.array_equal(pictures["last_frame_image"], rendered)


def test_a_frame_of_live_footage_as_shown_or_from_its_source(timeline, tmp_path):
    scene, service, first, _second = timeline
    clip = make_clip(tmp_path, 60, Fraction(25), size=(128, 72), seed=7)
    live = compat.strips(scene.sequence_editor).new_movie(name="live", filepath=str(clip), channel=5, frame_start=1)
    grade = live.modifiers.new("warm", 'COLOR_BALANCE')
    grade.color_balance.gain = (1.5, 1.0, 0.5)
    live.mute = True  # footage the director keeps off the cut: its frames are still there to take
    source = first.shotline.first_frame
    source.source, source.strip, source.frame = 'STRIP', "live", 12
    _generate(scene, first)
    _request, shown = service.received[-1]
    live.mute = False
    alone = render_frame(scene, 12, tmp_path / "live12.png")
    live.mute = True
    assert np.array_equal(shown["reference_image"], alone), "the strip as the sequencer shows it, graded"
    source.as_shown = False
    _generate(scene, first)
    _request, raw = service.received[-1]
    picture = raw["reference_image"]
    assert picture.shape[:2] == (72, 128)
    assert framecode.read(picture) == framecode.read(alone)
    assert picture[..., 2].mean() > shown["reference_image"][..., 2].mean() + 10, "no grading from the source"


@pytest.mark.parametrize("setup, message", [
    (lambda first, second: setattr(first.shotline.first_frame, "source", 'PREVIOUS'), "No shot before"),
    (lambda first, second: setattr(second.shotline.first_frame, "source", 'PREVIOUS'), "has no take yet"),
    (lambda first, second: (setattr(first.shotline.first_frame, "source", 'STRIP'),
                            setattr(first.shotline.first_frame, "strip", "gone")), "is not on the timeline"),
], ids=["no previous shot", "previous without take", "strip gone"])
def test_a_picture_that_cannot_be_had_is_said_before_anything_is_sent(timeline, setup, message):
    scene, service, first, second = timeline
    setup(first, second)
    shot = second if first.shotline.first_frame.source == 'FILE' else first
    select(scene, [shot])
    with pytest.raises(RuntimeError, match=message):
        op(scene, "shotline_generate")
    assert message in shot.shotline.status_message and shot.shotline.status == 'FAILED'
    assert not service.received and not runtime.busy()
    assert shots.take_strip(scene, shot) is None


def test_lip_sync_sends_the_song_under_the_shot_sample_exact(timeline, tmp_path):
    scene, service, first, _second = timeline
    path = _counting_song(tmp_path / "Qəmgin mahnı.wav", 5)
    song_strip = compat.strips(scene.sequence_editor).new_sound("Qəmgin mahnı", str(path), 1, 7)  # starts late
    compat.set_span(song_strip, 12, 80)  # trimmed at both ends
    first.shotline.song_audio = True
    compat.set_span(first, 5, 40)  # the shot starts before the song's trim
    _generate(scene, first)
    request, _pictures = service.received[-1]
    assert request.audio.endswith(".wav") and first.shotline.status == 'PLACED', first.shotline.status_message
    check_slice(path, Path(request.audio), shots.scene_fps(scene), 5, 40, 7, (12, 80))
    assert compat.span(shots.take_strip(scene, first)) == (5, 40), "the take starts where its audio starts"
    assert Path(request.audio).name in first.shotline.takes[0].references  # what made the take


def test_video_to_video_sends_exactly_the_footage_under_the_shot(timeline, tmp_path):
    scene, service, first, _second = timeline
    clip = make_clip(tmp_path, 90, Fraction(24), size=(128, 72), seed=5)
    live = compat.strips(scene.sequence_editor).new_movie(name="live", filepath=str(clip), channel=1, frame_start=-4)
    first.shotline.video_strip = "live"
    select(scene, [first])
    assert op(scene, "shotline_generate") == {'FINISHED'}
    assert first.shotline.status_message.startswith("Preparing the source video")
    runtime.run_until_idle(300, interval=0.02)
    assert first.shotline.status == 'PLACED', first.shotline.status_message
    request, _pictures = service.received[-1]
    left, right = compat.span(first)
    facts = service.sent_video
    assert (facts.frames, facts.fps) == (right - left, shots.scene_fps(scene))
    sent = compat.strips(scene.sequence_editor).new_movie(name="sent", filepath=request.source_video, channel=9,
                                                          frame_start=left)
    for frame in (left, left + 13, right - 1):
        shown = framecode.read(render_frame(scene, frame, tmp_path / "live.png"))  # the footage is on top
        got = framecode.read(np.asarray(Image.open(frames.source_frame(scene, sent, frame, tmp_path / "s.png"))))
        assert got == shown is not None, frame
    assert live.name == "live" and compat.span(live)[0] == -4


def test_cancelling_while_the_source_video_is_prepared_sends_nothing(timeline, tmp_path):
    scene, service, first, _second = timeline
    clip = make_clip(tmp_path, 90, Fraction(25), size=(128, 72), seed=5)
    compat.strips(scene.sequence_editor).new_movie(name="live", filepath=str(clip), channel=1, frame_start=1)
    first.shotline.video_strip = "live"
    select(scene, [first])
    scene.sequence_editor.active_strip = first
    assert op(scene, "shotline_generate") == {'FINISHED'}
    runtime.pump()
    assert op(scene, "shotline_cancel") == {'FINISHED'}
    runtime.run_until_idle(60, interval=0.02)
    assert first.shotline.status == 'CANCELLED' and not service.received and not first.shotline.takes


@pytest.mark.parametrize("spec", [("veo", "veo-3.1-fast-generate-preview"), ("replicate", "google/veo-3.1-fast")],
                         ids=["veo", "replicate"])
def test_a_cloud_service_receives_exactly_the_previous_shots_last_frame(scene, monkeypatch, tmp_path, spec):
    """Through a fake speaking the real protocol: the still arrives lossless, pixel for pixel."""
    from test_cast import _start

    system = bpy.context.preferences.system
    monkeypatch.setattr(system, "use_online_access", True)
    cloud, cdn = _start(spec, scene, monkeypatch)
    try:
        set_fps(scene, Fraction(30000, 1001))
        scene.render.resolution_x, scene.render.resolution_y = 256, 144
        scene.view_settings.view_transform = 'Standard'
        first = add_shot(scene, "Первый", 1, 30, channel=2)
        second = add_shot(scene, "Ikinci", 31, 48, channel=2)
        _generate(scene, first)  # the local animatic
        second.shotline.service, second.shotline.model = cloud.id, cloud.model
        second.shotline.first_frame.source = 'PREVIOUS'
        _generate(scene, second)
        assert second.shotline.status == 'PLACED', second.shotline.status_message
        if cloud.id == "veo":
            data = cloud.fake.bodies[0]["instances"][0]["image"]["bytesBase64Encoded"]
        else:
            (prediction,) = cloud.fake.predictions.values()
            data = next(v for k, v in prediction["input"].items() if k in ("image", "first_frame")).split(",", 1)[1]
        received = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        rendered = render_frame(scene, compat.span(first)[1] - 1, tmp_path / "last.png")
        assert np.array_equal(received, rendered)
    finally:
        cloud.fake.close()
        cdn.close()


def test_a_file_saved_while_the_source_video_was_prepared_says_it_was_interrupted(timeline, tmp_path):
    scene, service, first, _second = timeline
    clip = make_clip(tmp_path, 90, Fraction(25), size=(128, 72), seed=5)
    compat.strips(scene.sequence_editor).new_movie(name="live", filepath=str(clip), channel=1, frame_start=1)
    first.shotline.video_strip = "live"
    select(scene, [first])
    assert op(scene, "shotline_generate") == {'FINISHED'}
    blend, scene_name = tmp_path / "mid-export.blend", scene.name  # (earlier tests may have left a namesake)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)  # as a crash would leave the last save
    runtime.cancel()
    runtime.run_until_idle(60, interval=0.02)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    shot = next(s for s in shots.shots(bpy.data.scenes[scene_name]) if s.name == "Первый")
    assert shot.shotline.status == 'CANCELLED' and "Generate again" in shot.shotline.status_message
    assert not runtime.busy() and not service.received


def test_frame_at_playhead_takes_the_picture_under_it(timeline, tmp_path):
    scene, service, first, second = timeline
    _generate(scene, second)
    clip = make_clip(tmp_path, 30, Fraction(25), size=(128, 72), seed=7)  # over the first shot only
    compat.strips(scene.sequence_editor).new_movie(name="live", filepath=str(clip), channel=5, frame_start=1)
    scene.sequence_editor.active_strip = first
    scene.frame_current = 12
    assert op(scene, "shotline_frame_at_playhead", end='FIRST') == {'FINISHED'}
    source = first.shotline.first_frame
    assert (source.source, source.strip, source.frame) == ('STRIP', "live", 12)
    scene.frame_current = 40  # the second shot's take: another shot's picture is fair game
    assert op(scene, "shotline_frame_at_playhead", end='LAST') == {'FINISHED'}
    assert first.shotline.last_frame.strip == shots.take_strip(scene, second).name
    scene.frame_current = 200
    with pytest.raises(RuntimeError, match="Nothing but this shot is on the timeline at frame 200"):
        op(scene, "shotline_frame_at_playhead", end='FIRST')
    _generate(scene, first)
    _request, pictures = service.received[-1]
    assert set(pictures) == {"reference_image", "last_frame_image"}

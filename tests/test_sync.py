"""Sync, end to end: the source frame the sequencer shows is the one the real clock says.

Every take is made as a director makes it: the scene's rate set with Blender's own preset,
shots selected, Generate Selected Shots, the queue pumped until the takes are placed. The
request is built from the scene, so a 29.97 scene asks for 29.97 clips; services that only
deliver 16, 24, 25 or 30 fps (an animatic fixed to that rate) are conformed to the scene.
Single scene frames are then rendered through the VSE and the burned-in frame code is read
back. Blender shows the source frame nearest its position in the clip (within half a source
frame of the clock, plus the drift of retiming a clip to a whole number of scene frames, which
the request keeps small); its frame caches are off in `render_frame` because a cached
neighbour can be shown instead.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from shotline.addon import timing
from shotline.addon.blend import compat, shots
from vse import add_shot, fixed_rate_service, generate, set_fps, shown_source_frame

NTSC_24, NTSC_30, NTSC_60 = Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)
# Blender's frame-rate presets, and two custom rates (25 / 2 and 48 / 1.001)
SCENE_RATES = [NTSC_24, Fraction(24), Fraction(25), NTSC_30, Fraction(30), Fraction(50), NTSC_60, Fraction(60),
               Fraction(120), Fraction(25, 2), Fraction(48000, 1001)]
SERVICE_RATES = [Fraction(16), Fraction(24), Fraction(25), Fraction(30)]
SHOT_SECONDS = 2
AT_SECONDS = (0, 29.5, 58)


def _check_sync(scene, scene_fps, clip_fps, tmp_path, service_id=None):
    set_fps(scene, scene_fps)
    assert shots.scene_fps(scene) == scene_fps
    shot_frames = timing.nearest_frame(SHOT_SECONDS, scene_fps)
    made = []
    for seconds in AT_SECONDS:
        shot = add_shot(scene, f"at {seconds}s", 1 + timing.nearest_frame(seconds, scene_fps), shot_frames)
        if service_id:
            shot.shotline.service = service_id
        made.append(shot)
    generate(scene, made)
    out = tmp_path / "frame.png"
    for shot in made:
        assert shot.shotline.status == 'PLACED', shot.shotline.status_message
        take = shots.take_strip(scene, shot)
        left, right = compat.span(shot)
        assert compat.span(take) == (left, right)
        record = shot.shotline.takes[0]
        assert timing.rate(record.fps) == clip_fps
        # retimed to whole scene frames: the clip's end (4.5: its last frame) is this far from the clock
        anchor = int(compat.RETIMES_TO_LAST_FRAME)
        content = compat.content_frames(take) - anchor
        drift = abs(content * clip_fps / scene_fps - (record.frames - anchor))
        assert drift <= Fraction(1, 5), f"{record.frames} frames retimed to {content + anchor}"
        for offset in (0, 1, 2, shot_frames // 3, shot_frames // 2, shot_frames - 2, shot_frames - 1):
            clock = timing.source_position(offset, clip_fps, scene_fps)
            shown = shown_source_frame(scene, left + offset, out)
            assert shown is not None, f"no frame code at timeline frame {left + offset}"
            assert abs(shown - clock) <= Fraction(1, 2) + drift * offset / content + Fraction(1, 1000), (
                f"{shot.name} + {offset} frames: shows source frame {shown}, the clock says {float(clock):.3f}")


@pytest.mark.parametrize("scene_fps", SCENE_RATES, ids=lambda r: f"scene{float(r):.3f}")
def test_takes_at_the_scene_rate_follow_the_clock(scene, tmp_path, scene_fps):
    _check_sync(scene, scene_fps, scene_fps, tmp_path)


@pytest.mark.parametrize("scene_fps", [NTSC_24, Fraction(25), NTSC_30, NTSC_60], ids=lambda r: f"scene{float(r):.3f}")
@pytest.mark.parametrize("clip_fps", SERVICE_RATES, ids=lambda r: f"clip{int(r)}")
def test_takes_from_fixed_rate_services_are_conformed(scene, tmp_path, monkeypatch, scene_fps, clip_fps):
    service = fixed_rate_service(monkeypatch, clip_fps)
    _check_sync(scene, scene_fps, clip_fps, tmp_path, service.id)

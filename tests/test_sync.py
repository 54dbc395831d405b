"""Sync, end to end: the source frame the sequencer shows is the one the real clock says.

Takes are placed at shots spread over 60 s of timeline for every scene rate x clip rate
pair; single scene frames are rendered through the VSE and the burned-in frame code is
read back. Blender shows the source frame nearest the clock (within half a source frame);
its frame caches are off in `render_frame` because a cached neighbour can be shown instead.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from shotline.addon import timing
from shotline.addon.blend import compat, placement
from vse import add_shot, make_clip, set_fps, shown_source_frame

SCENE_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30)]
CLIP_RATES = [Fraction(24), Fraction(25), Fraction(30)]
SHOT_SECONDS = 2


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sync")
    # a little longer than any shot at any scene rate, so every shot is trimmed, never held
    return {fps: make_clip(folder, int(fps * SHOT_SECONDS) + 4, fps) for fps in CLIP_RATES}


@pytest.mark.parametrize("scene_fps", SCENE_RATES, ids=lambda r: f"scene{float(r):.3f}")
@pytest.mark.parametrize("clip_fps", CLIP_RATES, ids=lambda r: f"clip{int(r)}")
def test_shown_frame_follows_the_real_clock(scene, clips, tmp_path, scene_fps, clip_fps):
    set_fps(scene, scene_fps)
    shot_frames = timing.nearest_frame(SHOT_SECONDS, scene_fps)
    out = tmp_path / "frame.png"
    errors = []
    for seconds in (0, 29.5, 58):
        left = 1 + timing.nearest_frame(seconds, scene_fps)
        shot = add_shot(scene, f"at {seconds}s", left, shot_frames)
        take = placement.place_take(scene, shot, str(clips[clip_fps])).strip
        assert compat.span(take) == (left, left + shot_frames)
        for offset in (0, 1, 2, shot_frames // 3, shot_frames // 2, shot_frames - 2, shot_frames - 1):
            clock = timing.source_position(offset, clip_fps, scene_fps)
            shown = shown_source_frame(scene, left + offset, out)
            assert shown is not None, f"no frame code at timeline frame {left + offset}"
            errors.append(abs(shown - clock))
            assert abs(shown - clock) <= Fraction(1, 2) + Fraction(1, 1000), (
                f"{seconds}s + {offset} frames: shows source frame {shown}, the clock says {float(clock):.3f}")
    assert max(errors) <= Fraction(1, 2) + Fraction(1, 1000)

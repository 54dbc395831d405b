"""Exact time arithmetic: rates, conforming, fit plans, requests rounded to what services accept."""

import math
from fractions import Fraction

import pytest

from addon import timing


BLENDER_1001 = 1.0010000467300415  # 1.001 as Blender stores fps_base (a float32)


@pytest.mark.parametrize("fps, base, expected", [
    (24, 1.001, Fraction(24000, 1001)), (30, 1.001, Fraction(30000, 1001)), (25, 1.0, Fraction(25)),
    (24, 1.0, Fraction(24)), (60, 1.001, Fraction(60000, 1001)),
    (24, BLENDER_1001, Fraction(24000, 1001)), (30, BLENDER_1001, Fraction(30000, 1001)),
    (60, BLENDER_1001, Fraction(60000, 1001)), (48, BLENDER_1001, Fraction(48000, 1001)),
    (50, 1.0, Fraction(50)), (120, 1.0, Fraction(120)), (25, 2.0, Fraction(25, 2)), (1000, 7.0, Fraction(1000, 7)),
])
def test_scene_rate_is_exact(fps, base, expected):
    assert timing.scene_rate(fps, base) == expected


def test_float_rates_from_files_snap_to_exact_rates():
    assert timing.rate(23.976023864746094) == Fraction(24000, 1001)
    assert timing.rate(29.97003) == Fraction(30000, 1001)
    assert timing.rate(12.5) == Fraction(25, 2)
    with pytest.raises(ValueError):
        timing.rate(0)


def test_conformed_length_plays_at_real_speed():
    assert timing.conformed_length(48, Fraction(24), Fraction(30)) == 60
    assert timing.conformed_length(48, Fraction(24), Fraction(24000, 1001)) == 48
    assert timing.conformed_length(121, Fraction(24), Fraction(30000, 1001)) == 151
    assert timing.conformed_length(125, Fraction(25), Fraction(24)) == 120
    # Blender 4.5 places the last frame, not the clip's end: 32 frames at 16 fps in 25 fps
    # put frame 31 at 48.4 -> 48, so the strip is 49 frames (not round(50.0) = 50)
    assert timing.conformed_length(32, Fraction(16), Fraction(25), anchor_last=True) == 49
    assert timing.conformed_length(32, Fraction(16), Fraction(25)) == 50


def test_no_drift_over_an_hour():
    # an hour of 23.976 footage in a 23.976 scene is exactly as many frames
    assert timing.conformed_length(86314, Fraction(24000, 1001), Fraction(24000, 1001)) == 86314
    assert timing.nearest_frame(3600, Fraction(24000, 1001)) == 86314


def test_fit_trims_a_long_clip_at_the_shot_end():
    plan = timing.plan_fit(50, 100, Fraction(24), Fraction(24), "HOLD")
    assert (plan.content_frames, plan.visible_frames, plan.trimmed) == (100, 50, True)


@pytest.mark.parametrize("policy, content, visible, loops, short", [
    ("STRETCH", 100, 100, 0, 0), ("HOLD", 40, 100, 0, 0), ("LOOP", 40, 40, 2, 0), ("SHORT", 40, 40, 0, 60),
])
def test_fit_policies_for_a_short_clip(policy, content, visible, loops, short):
    plan = timing.plan_fit(100, 40, Fraction(24), Fraction(24), policy)
    assert (plan.content_frames, plan.visible_frames, plan.loops, plan.short_by) == (content, visible, loops, short)
    assert plan.visible_frames <= 100


def test_fit_rejects_nonsense():
    with pytest.raises(ValueError):
        timing.plan_fit(0, 10, Fraction(24), Fraction(24), "HOLD")
    with pytest.raises(ValueError):
        timing.plan_fit(10, 10, Fraction(24), Fraction(24), "SPIN")


def test_request_rounds_up_to_what_the_service_accepts():
    # 6 s shot at 24 fps on a service with 5 s or 10 s clips: ask for 10 s
    assert timing.request_frames(144, Fraction(24), Fraction(24), durations=(5, 10)) == 240
    # 8n+1 frames
    assert timing.request_frames(100, Fraction(24), Fraction(24), multiple=(8, 1)) == 105
    # clip rate differs from the scene: enough source frames to cover the shot at real speed
    assert timing.request_frames(60, Fraction(30), Fraction(24)) == 48
    # longer than any accepted duration: the longest, the shot will be flagged short
    assert timing.request_frames(24 * 30, Fraction(24), Fraction(24), durations=(5, 10)) == 240
    assert timing.request_frames(500, Fraction(24), Fraction(24), max_frames=121) == 121


def test_free_frame_counts_span_whole_scene_frames():
    """Blender retimes to whole frames: a free frame count is chosen so the clip spans (nearly) one."""
    ntsc = Fraction(24000, 1001)
    assert timing.request_frames(48, ntsc, Fraction(16)) == 34  # 33 frames would span 49.45 scene frames
    for clip_fps in (Fraction(16), Fraction(24), Fraction(25), Fraction(30)):
        for scene_fps in (ntsc, Fraction(25), Fraction(30000, 1001), Fraction(60000, 1001)):
            for shot in (24, 48, 61, 100):
                n = timing.request_frames(shot, scene_fps, clip_fps)
                shortest = math.ceil(shot * clip_fps / scene_fps)
                assert shortest <= n <= shortest + 8

                def off_whole(frames):
                    span = frames * scene_fps / clip_fps
                    return abs(span - round(span))

                assert off_whole(n) <= off_whole(shortest), (clip_fps, scene_fps, shot, n)
    # a frame multiple (8n+1) is kept, a maximum too
    assert (timing.request_frames(48, ntsc, Fraction(16), multiple=(8, 1)) - 1) % 8 == 0
    assert timing.request_frames(48, ntsc, Fraction(16), max_frames=33) == 33


def test_song_placement_maps_file_seconds_to_frames():
    song = timing.SongPlacement(content_start=100, left=148, right=2000, fps=Fraction(24000, 1001))
    assert song.frame_at(0) == 100
    assert song.frame_at(Fraction(1001, 24000)) == 101
    assert song.nearest_frame(2.0) == 100 + 48  # 47.952 frames -> 48
    assert song.seconds_at(100 + 24) == Fraction(1001, 1000)
    assert not song.audible(1.0)  # trimmed away by the left handle
    assert song.audible(3.0)

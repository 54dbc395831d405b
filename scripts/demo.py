"""Shotline's demo: a synthwave music video laid out, generated and placed from scratch.

Run through `scripts/demo` (it makes the virtual environment). Steps: synthesise a 4/4
song, lay 12 shots from demo_data/shots.csv on 2-bar boundaries, generate each with the
local animatic service, place the takes in sync, save a .blend, render a preview with audio.
"""

from __future__ import annotations

import sys
import time
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import shotline_dev  # noqa: E402
from batch import blender_output_hidden  # noqa: E402

BPM = 118
BEATS_PER_BAR = 4
INTRO_BARS = 2
RATE = 44100


def synth_song(path: Path, bars: int) -> float:
    """A 4/4 synthwave loop: kick, snare on 2 and 4, eighth hats, a bass line and a pad (Am F C G)."""
    beat = 60 / BPM
    seconds = bars * BEATS_PER_BAR * beat + 1.0
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    mix = np.zeros(n)
    rng = np.random.default_rng(7)

    def hit(times, sound):
        for start in times:
            i = int(round(start * RATE))
            part = sound[: n - i]
            mix[i:i + len(part)] += part

    d = np.arange(int(0.25 * RATE)) / RATE
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-d * 30)) * d) * np.exp(-d * 12)
    snare = rng.normal(0, 1, len(d)) * np.exp(-d * 25) * 0.5
    hat = rng.normal(0, 1, len(d) // 5) * np.exp(-d[: len(d) // 5] * 120) * 0.15
    beats = np.arange(bars * BEATS_PER_BAR) * beat
    hit(beats[INTRO_BARS * BEATS_PER_BAR:], kick)
    hit(beats[INTRO_BARS * BEATS_PER_BAR + 1::2], snare)
    hit(np.arange(bars * BEATS_PER_BAR * 2) * beat / 2, hat)
    roots = [110.0, 87.31, 130.81, 98.0]  # A2 F2 C3 G2
    bar_of = np.minimum((t / (beat * BEATS_PER_BAR)).astype(int), bars - 1)
    root = np.array(roots)[bar_of % 4]
    mix += 0.2 * np.sign(np.sin(2 * np.pi * root * t)) * (t > INTRO_BARS * BEATS_PER_BAR * beat)
    mix += 0.08 * sum(np.sin(2 * np.pi * root * k * t) for k in (2, 2.5, 3))
    mix *= 0.9 / np.max(np.abs(mix))
    pcm = (np.repeat(mix[:, None], 2, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return seconds


def build(out_dir: Path, size=(640, 360)):
    """A new scene with the song and the shots laid out on the song's analysed bars; returns (scene, shots)."""
    import bpy

    from shotline.addon import beats, layout, shotlist
    from shotline.addon.blend import compat, song

    rows = shotlist.read(HERE / "demo_data" / "shots.csv")
    bars = INTRO_BARS + sum(b for b, _ in rows) + 2
    song_path = out_dir / "song.wav"
    synth_song(song_path, bars)

    scene = bpy.context.scene
    scene.name = "Music Video"
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    ed = scene.sequence_editor_create()
    for strip in list(compat.strips(ed)):
        compat.strips(ed).remove(strip)
    sound = compat.strips(ed).new_sound("Song", str(song_path), channel=1, frame_start=1)
    scene.frame_start, scene.frame_end = 1, compat.span(sound)[1] - 1

    analysis, _cached = song.analyze(scene)
    bar_list = beats.bars(analysis)
    truth = [n * 60 * BEATS_PER_BAR / BPM for n in range(len(bar_list))]
    error_ms = 1000 * max(abs(a - t) for (a, _b), t in zip(bar_list, truth))
    print(f"Song: {analysis.bpm:.1f} BPM (synthesised at {BPM}), {analysis.beats_per_bar}/4, {len(bar_list)} bars; "
          f"tracked bar starts within {error_ms:.0f} ms of the synthesised ones", flush=True)
    made = song.lay_out(scene, layout.from_bar_counts(bar_list, rows, first_bar=INTRO_BARS), channel=2)
    for number, strip in enumerate(made, 1):
        strip.font_size = 24
        strip.shotline.seed = 1000 + number
        strip.shotline.random_seed = False
    return scene, made


def generate(scene, shot_strips, on_pump=None, timeout: float = 900) -> float:
    """Queue every shot and pump until all are placed, as Blender's timer would; returns wall seconds."""
    from shotline.addon.blend import runtime

    started = time.perf_counter()
    queued, problems, _reused = runtime.submit(scene, shot_strips)
    if problems:
        raise RuntimeError("; ".join(problems))
    runtime.run_until_idle(timeout, on_pump=on_pump)
    return time.perf_counter() - started


def render_preview(scene, path: Path, steps: int = 4) -> None:
    """Render the preview; prints its progress `steps` times instead of Blender's line per frame."""
    import bpy

    render = scene.render
    if "media_type" in render.image_settings.bl_rna.properties:
        render.image_settings.media_type = 'VIDEO'
    render.image_settings.file_format = 'FFMPEG'
    render.ffmpeg.format, render.ffmpeg.codec = 'MPEG4', 'H264'
    render.ffmpeg.audio_codec, render.ffmpeg.audio_channels = 'AAC', 'STEREO'
    render.use_sequencer = True
    render.use_file_extension = False
    render.filepath = str(path)
    total = scene.frame_end - scene.frame_start + 1
    path.unlink(missing_ok=True)  # an old preview must not pass for this one
    with blender_output_hidden() as say:
        shown = 0

        def on_frame(rendered, *_args) -> None:
            nonlocal shown
            done = rendered.frame_current - rendered.frame_start + 1
            while shown < steps and done * steps >= (shown + 1) * total:
                shown += 1
                say(f"Rendering preview: {100 * shown // steps}% ({done}/{total} frames)")

        bpy.app.handlers.render_write.append(on_frame)
        try:
            with bpy.context.temp_override(scene=scene):
                bpy.ops.render.render(animation=True)
        finally:
            bpy.app.handlers.render_write.remove(on_frame)
        if not path.is_file() or shown < steps:
            raise RuntimeError(f"Blender did not render {path.name} ({100 * shown // steps}% of the frames written)")


def main(out_dir: Path) -> int:
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    shotline_dev.expose_checkout()
    import bpy

    shotline_dev.enable()
    from shotline.addon.blend import shots

    scene, made = build(out_dir)
    print(f"Song and {len(made)} shots laid out on 2-bar boundaries at {BPM} BPM; generating...", flush=True)
    seconds = generate(scene, made)
    failed = [s for s in made if s.shotline.status not in {'PLACED', 'SHORT'}]
    for shot in made:
        print(f"  {shot.name}: {shot.shotline.status.lower()} {shot.shotline.status_message}".rstrip())
    print(f"Generated and placed {len(made) - len(failed)}/{len(made)} takes in {seconds:.1f} s")
    blend = out_dir / "shotline_demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    preview = out_dir / "preview.mp4"
    print("Rendering the preview with the song...", flush=True)
    render_preview(scene, preview)
    takes = [t for s in made for t in s.shotline.takes]  # earlier runs' takes stay in the folder, unused
    print(f"\nBlend file:    {blend}\nPreview video: {preview}\nTakes:         {len(takes)} files in "
          f"{out_dir / 'shotline'}")
    shotline_dev.disable()
    return 1 if failed else 0


if __name__ == "__main__":
    code = main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output"))
    sys.stdout.flush()
    import os

    os._exit(code)  # bpy 4.5 can hang at interpreter exit after render work

"""Make an animatic clip: draw its frames with the pure core, then encode them with Blender's own FFmpeg.
With --encode-only, encode frames that are already there (a ComfyUI image sequence).

Only ever RUN in a child process, never imported by the add-on (all per-frame work happens
here, so none of it holds the GIL in Blender's process):
    python animatic_child.py -- ARGS                                   (the bpy module)
    blender -b --factory-startup --python animatic_child.py -- ARGS    (a Blender binary)
ARGS: --path DIR (repeatable: put first on sys.path; the add-on root, i.e. the folder holding
`addon/`, and the folder Pillow is installed in) --request FILE.json --frames DIR --output FILE.mp4
[--encode-only]

The request JSON holds shot_name, prompt, negative_prompt, seed, frames, fps ("num/den"),
width, height, reference_image, last_frame_image, reference_images (a list), source_video and
audio. The source video is decoded here by Blender's own FFmpeg (a scene at the source's rate
rendering the frames needed into --frames), the audio by Blender's audio library (aud): what the
core needs of them, picture files and loudness per frame, is handed to it. The core is imported
as the top-level package `addon`,
whatever the add-on's package is called in the parent. With --encode-only the JSON holds only
frames, fps, width and height, and --frames already holds that many frames (PNG or JPEG, any
names, played in name order, all of that size): nothing is drawn.

Runs at a lower priority than Blender. Prints "shotline-progress PHASE DONE TOTAL" (PHASE:
drawing, then encoding) per frame and "shotline-done" at the end, then leaves with os._exit
(bpy 4.5 may crash at interpreter exit after render work; the parent points TMPDIR at a
folder it removes, so skipping Blender's exit clean-up leaves nothing behind).
"""

import argparse
import json
import os
import sys
from fractions import Fraction

PROGRESS = "shotline-progress"
DONE = "shotline-done"


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    parser = argparse.ArgumentParser(prog="animatic_child")
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--request", required=True)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--encode-only", action="store_true")
    return parser.parse_args(args)


def report(phase: str, done: int, total: int) -> None:
    print(PROGRESS, phase, done, total, flush=True)


def frame_name(index: int) -> str:
    return f"{index:06d}.jpg"


def blender_fonts() -> list[str]:
    """The font files Blender's UI draws with, so the animatic draws any text the prompt field shows:
    Inter (Latin, Cyrillic, Greek, punctuation) first, the Noto fonts for other scripts next, the
    monospace font last. LastResort is left out: its glyphs are boxes. Empty if Blender has none
    (the core then falls back to Pillow's built-in ASCII font)."""
    import bpy

    folder = bpy.utils.system_resource('DATAFILES', path="fonts")  # "" when missing
    if not folder:
        return []
    rank = {"Inter.woff2": 0, "DejaVuSansMono.woff2": 2}
    names = [name for name in os.listdir(folder)
             if name.endswith((".woff2", ".ttf", ".otf")) and not name.lower().startswith("lastresort")]
    return [os.path.join(folder, name) for name in sorted(names, key=lambda name: (rank.get(name, 1), name))]


def draw(request_file: str, frames_dir: str):
    """Draw every frame of the request into `frames_dir`; returns the request."""
    from addon import animatic  # the pure core, found through --path
    from addon.services.base import Request

    with open(request_file, encoding="utf-8") as file:
        fields = json.load(file)
    request = Request(**dict(fields, fps=Fraction(fields["fps"]),
                             reference_images=tuple(fields.get("reference_images", ()))))
    os.makedirs(frames_dir, exist_ok=True)
    source = decode_source(request, os.path.join(frames_dir, "source")) if request.source_video else None
    loudness = None
    if request.audio:
        samples, rate = decode_audio(request.audio)
        loudness = animatic.frame_loudness(samples, rate, request.fps, request.frames)
    try:
        painter = animatic.Animatic(request, blender_fonts(), source, loudness)
    except animatic.InputError as ex:
        raise RuntimeError(str(ex)) from None
    for index in range(request.frames):
        animatic.write_frame(painter.frame(index), os.path.join(frames_dir, frame_name(index)))
        report("drawing", index + 1, request.frames)
    return request


def sequencer_strips(scene):
    editor = scene.sequence_editor_create()
    return editor.strips if hasattr(editor, "strips") else editor.sequences  # 5.x / 4.5


def decode_source(request, folder: str) -> list[str]:
    """Render the source video's frames the request shows, filling the output's size, into `folder`
    as PNG; returns the file shown at each output frame. A scene of its own, at the source's rate, so
    Blender plays the movie frame by frame as it is."""
    import bpy
    from addon import animatic

    name = os.path.basename(request.source_video)
    scene = bpy.data.scenes.new("shotline-source")
    strip = sequencer_strips(scene).new_movie("source", request.source_video, 1, 1, fit_method='FILL')
    if strip.fps <= 0 or strip.frame_duration < 1:  # what Blender makes of a file FFmpeg cannot open
        raise RuntimeError(f"Blender cannot read the source video {name}")
    source_fps = Fraction(strip.fps).limit_denominator(1001)  # 29.97 is stored as a float: 30000/1001
    numbers = animatic.source_frame_numbers(request.frames, request.fps, source_fps, strip.frame_duration)
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = request.width, request.height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.fps, render.fps_base = fps_settings(source_fps)
    scene.frame_start, scene.frame_end = 1, max(numbers) + 1
    scene.view_settings.view_transform = 'Standard'  # the source's pictures as they are
    scene.view_settings.look = 'None'
    render.use_sequencer = True
    render.use_compositing = False
    render.image_settings.file_format = 'PNG'
    render.image_settings.color_mode = 'RGB'
    render.use_file_extension = True
    render.filepath = os.path.join(folder, "source_")
    bpy.ops.render.render(animation=True, scene=scene.name)
    shown = [os.path.join(folder, f"source_{number + 1:04d}.png") for number in numbers]
    missing = [path for path in shown if not os.path.isfile(path)]
    if missing:
        raise RuntimeError(f"Blender could not decode the source video {name} ({len(missing)} frames missing)")
    bpy.data.scenes.remove(scene)
    return shown


def decode_audio(path: str):
    """Samples (n, channels) float32 and rate, with Blender's own audio library: every format Blender plays.
    The specs are read first: on Blender 4.5 `data()` of a file aud cannot read aborts the process."""
    import bpy  # noqa: F401 (the bpy module makes `aud` importable)
    import aud

    try:
        sound = aud.Sound(path)
        rate = int(sound.specs[0])
        return sound.data(), rate
    except aud.error as ex:
        raise RuntimeError(f"Blender cannot read the audio file {os.path.basename(path)}: {ex}") from None


def fps_settings(fps: Fraction) -> tuple[int, float]:
    """scene.render.fps (an int up to 32767) and fps_base for an exact rate."""
    if fps.denominator == 1001 and fps.numerator % 1000 == 0:
        return fps.numerator // 1000, 1.001  # Blender's own NTSC presets
    if fps.numerator <= 32767:
        return fps.numerator, float(fps.denominator)
    whole = max(1, round(fps))
    return whole, float(whole / fps)  # the nearest Blender can store


def build_scene(frames_dir: str, names: list[str], fps: Fraction, width: int, height: int, output: str):
    import bpy

    scene = bpy.context.scene
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.fps, render.fps_base = fps_settings(fps)
    scene.frame_start, scene.frame_end = 1, len(names)
    # The frames are display-ready sRGB: no tone mapping on the way out.
    scene.view_settings.view_transform = 'Standard'
    scene.view_settings.look = 'None'
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    render.use_sequencer = True
    render.use_compositing = False

    image = render.image_settings
    if "media_type" in image.bl_rna.properties:  # 5.0+
        image.media_type = 'VIDEO'
    image.file_format = 'FFMPEG'
    ffmpeg = render.ffmpeg
    ffmpeg.format = 'MPEG4'
    ffmpeg.codec = 'H264'
    ffmpeg.constant_rate_factor = 'HIGH'  # crisp text and frame code
    ffmpeg.ffmpeg_preset = 'REALTIME'  # a placeholder clip: speed over file size
    ffmpeg.audio_codec = 'NONE'
    render.use_file_extension = False
    render.filepath = output

    strips = sequencer_strips(scene)
    for name in ("use_cache_raw", "use_cache_preprocessed", "use_cache_composite", "use_cache_final"):
        if hasattr(scene.sequence_editor, name):
            setattr(scene.sequence_editor, name, False)  # every frame is read once: caching only costs memory
    strip = strips.new_image("frames", os.path.join(frames_dir, names[0]), 1, 1)
    for name in names[1:]:
        strip.elements.append(name)
    return scene


def report_frame(scene, *_args) -> None:
    report("encoding", scene.frame_current - scene.frame_start + 1, scene.frame_end - scene.frame_start + 1)


def encode(frames_dir: str, names: list[str], fps: Fraction, width: int, height: int, output: str) -> None:
    import bpy

    scene = build_scene(frames_dir, names, fps, width, height, output)
    bpy.app.handlers.render_write.append(report_frame)
    bpy.ops.render.render(animation=True, scene=scene.name)
    if not os.path.isfile(output):
        raise RuntimeError(f"Blender wrote no file at {output}")


def main() -> None:
    args = parse_args(sys.argv)
    if hasattr(os, "nice"):  # background work: Blender's UI gets the CPU first (Windows: see encode.py)
        os.nice(10)
    sys.path[:0] = args.path  # before any import of the core, Pillow or (for the bpy module) bpy
    frames_dir = os.path.abspath(args.frames)
    if args.encode_only:
        with open(args.request, encoding="utf-8") as file:
            clip = json.load(file)
        names = sorted(os.listdir(frames_dir))
        if len(names) != clip["frames"]:
            raise RuntimeError(f"Expected {clip['frames']} frames in {frames_dir}, found {len(names)}")
        fps, width, height = Fraction(clip["fps"]), clip["width"], clip["height"]
    else:
        request = draw(args.request, frames_dir)
        names = [frame_name(index) for index in range(request.frames)]
        fps, width, height = request.fps, request.width, request.height
    encode(frames_dir, names, fps, width, height, os.path.abspath(args.output))
    print(DONE, flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as ex:  # the parent shows the last output lines to the user
        message = str(ex) if type(ex) is RuntimeError else f"{type(ex).__name__}: {ex}"  # ours read as they are
        print(f"animatic failed: {message}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

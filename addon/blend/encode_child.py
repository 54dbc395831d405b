"""Encode a folder of numbered JPEG frames to an MP4/H.264 file with Blender's own FFmpeg.

Only ever RUN in a child process, never imported by the add-on:
    python encode_child.py -- ARGS                                   (the bpy module)
    blender -b --factory-startup --python encode_child.py -- ARGS    (a Blender binary)
ARGS: --frames DIR (000000.jpg, 000001.jpg, ...) --count N --fps NUM/DEN --size WxH --output FILE.mp4

Prints "shotline-progress DONE TOTAL" per written frame and "shotline-done" at the end, then
leaves with os._exit (bpy 4.5 may crash at interpreter exit after render work; the parent
points TMPDIR at a folder it removes, so skipping Blender's exit clean-up leaves nothing behind).
"""

import argparse
import os
import sys
from fractions import Fraction

import bpy

PROGRESS = "shotline-progress"
DONE = "shotline-done"


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    parser = argparse.ArgumentParser(prog="encode_child")
    parser.add_argument("--frames", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--fps", type=Fraction, required=True)
    parser.add_argument("--size", required=True)
    parser.add_argument("--output", required=True)
    return parser.parse_args(args)


def fps_settings(fps: Fraction) -> tuple[int, float]:
    """scene.render.fps (an int up to 32767) and fps_base for an exact rate."""
    if fps.denominator == 1001 and fps.numerator % 1000 == 0:
        return fps.numerator // 1000, 1.001  # Blender's own NTSC presets
    if fps.numerator > 32767:
        raise ValueError(f"frame rate {fps} cannot be expressed in Blender")
    return fps.numerator, float(fps.denominator)


def build_scene(frames_dir: str, count: int, fps: Fraction, width: int, height: int, output: str) -> bpy.types.Scene:
    scene = bpy.context.scene
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.fps, render.fps_base = fps_settings(fps)
    scene.frame_start, scene.frame_end = 1, count
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

    editor = scene.sequence_editor_create()
    for name in ("use_cache_raw", "use_cache_preprocessed", "use_cache_composite", "use_cache_final"):
        if hasattr(editor, name):
            setattr(editor, name, False)  # every frame is read once: caching only costs memory
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    names = [f"{i:06d}.jpg" for i in range(count)]
    strip = strips.new_image("frames", os.path.join(frames_dir, names[0]), 1, 1)
    for name in names[1:]:
        strip.elements.append(name)
    return scene


def report_frame(scene: bpy.types.Scene, *_args) -> None:
    print(PROGRESS, scene.frame_current - scene.frame_start + 1, scene.frame_end - scene.frame_start + 1, flush=True)


def main() -> None:
    args = parse_args(sys.argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    scene = build_scene(os.path.abspath(args.frames), args.count, args.fps, width, height, os.path.abspath(args.output))
    bpy.app.handlers.render_write.append(report_frame)
    bpy.ops.render.render(animation=True, scene=scene.name)
    if not os.path.isfile(args.output):
        raise RuntimeError(f"Blender wrote no file at {args.output}")
    print(DONE, flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as ex:  # the parent shows the last stderr lines to the user
        print(f"encode failed: {type(ex).__name__}: {ex}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

"""Shotline from the command line: analyse the song, lay out shots, generate, save — no UI.

    python scripts/batch.py FILE.blend [options]                 (a Python with the bpy module)
    blender -b FILE.blend --python scripts/batch.py -- [options] (Blender, with Shotline installed)

Options:
    --analyze               analyse the song (cached in the file until the song changes)
    --markers bars|beats    put Shotline's bar or beat markers on the timeline
    --lay-out every:N | sections | list:PATH [--first-bar N]
    --generate              generate every shot that has no take yet (--all: every shot)
    --save PATH             where to save (default: over FILE.blend)
Prints one line per step and a JSON summary of the shots at the end; exits 1 if a shot failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import import_module
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch.py", description=__doc__.splitlines()[0])
    parser.add_argument("blend", nargs="?", help="the .blend to open (not needed inside `blender -b FILE`)")
    parser.add_argument("--analyze", action="store_true")
    parser.add_argument("--markers", choices=("bars", "beats"))
    parser.add_argument("--lay-out", dest="lay_out")
    parser.add_argument("--first-bar", type=int, default=1)
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--all", action="store_true", help="with --generate: shots that have takes too")
    parser.add_argument("--save")
    return parser.parse_args(argv)


def load(args: argparse.Namespace):
    """Open the file and make sure the add-on is there (the checkout's, when run with the bpy module)."""
    in_blender = "--" in sys.argv
    if not in_blender:
        sys.path.insert(0, str(HERE))
        import shotline_dev

        shotline_dev.expose_checkout()
    import bpy

    if args.blend:
        if not Path(args.blend).is_file():
            raise SystemExit(f"No such .blend file: {args.blend}")
        bpy.ops.wm.open_mainfile(filepath=str(Path(args.blend).resolve()))
    if not in_blender:
        shotline_dev.enable()
    package = next((name for name in bpy.context.preferences.addons.keys() if name.split(".")[-1] == "shotline"),
                   None)
    if package is None:
        raise SystemExit("Shotline is not enabled in this Blender: install and enable the extension first")
    return bpy, sys.modules[package]


def main(argv: list[str]) -> int:
    args = parse(argv)
    bpy, addon = load(args)
    glue = addon.__name__ + ".addon.blend."
    compat, runtime, shots = (import_module(glue + name) for name in ("compat", "runtime", "shots"))
    scene = bpy.context.scene

    def run_operator(name: str, **props) -> None:
        with bpy.context.temp_override(**compat.scene_override(scene)):
            getattr(bpy.ops.sequencer, name)(**props)

    if scene.sequence_editor is None:
        raise SystemExit(f"Scene \"{scene.name}\" has no sequencer strips")
    try:
        if args.analyze or args.markers:
            run_operator("shotline_analyze_song", markers=(args.markers or "keep").upper())
        if args.lay_out:
            mode, _, value = args.lay_out.partition(":")
            if mode == "every":
                run_operator("shotline_lay_out", mode='BARS', bars=int(value or 2),
                             first_bar=args.first_bar)
            elif mode == "sections":
                run_operator("shotline_lay_out", mode='SECTIONS')
            elif mode == "list":
                run_operator("shotline_lay_out", mode='LIST', filepath=str(Path(value).resolve()),
                             first_bar=args.first_bar)
            else:
                raise SystemExit(f"--lay-out takes every:N, sections or list:PATH, not {args.lay_out!r}")
    except RuntimeError as err:  # an operator's error report
        raise SystemExit(str(err).strip()) from None
    if args.generate:
        todo = [s for s in shots.shots(scene) if args.all or not len(s.shotline.takes)]
        queued, problems = runtime.submit(scene, todo)
        for problem in problems:
            print(f"not queued: {problem}", flush=True)
        print(f"generating {queued} shots", flush=True)
        runtime.run_until_idle(timeout=24 * 3600)
    target = args.save or args.blend or bpy.data.filepath
    if target:
        bpy.ops.wm.save_as_mainfile(filepath=str(Path(target).resolve()))
    summary = [{"shot": s.name, "status": s.shotline.status, "message": s.shotline.status_message,
                "takes": len(s.shotline.takes), "frames": list(compat.span(s))} for s in shots.shots(scene)]
    print(json.dumps({"file": target, "shots": summary}), flush=True)
    return 1 if any(s["status"] == 'FAILED' for s in summary) else 0

if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    code = main(argv)
    sys.stdout.flush()
    import os

    os._exit(code)  # bpy 4.5 can hang at interpreter exit after render work

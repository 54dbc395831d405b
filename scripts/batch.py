"""Shotline from the command line: analyse the song, lay out shots, generate, save — no UI.

    python scripts/batch.py FILE.blend [options]                 (a Python with the bpy module)
    blender -b FILE.blend --python scripts/batch.py -- [options] (Blender, with Shotline installed)

Options:
    --analyze               analyse the song (cached in the file until the song changes)
    --markers bars|beats    put Shotline's bar or beat markers on the timeline
    --lay-out every:N | sections | list:PATH [--first-bar N]
    --generate              generate every shot that has no take yet (--all: every shot)
    --service ID --model M  with --generate: the service (animatic, fal, replicate, runway, luma, veo)
                            and its model for those shots (default: each shot's own)
    --force                 with --generate: pay for a new take even when the same request made one
    --shot NAME             with --generate: only this shot (repeatable). A failed shot then does not
                            make the exit status 1: a farm retries a task that fails, and a retry
                            can pay twice (scripts/flamenco/shotline-batch.js)
    --workflow PATH         with --generate: the project's workflow for workflow services (ComfyUI,
                            API format); implies --service comfyui unless --service says otherwise
    --pin FIELD=NODE.INPUT  with --workflow: where a field goes when the workflow is ambiguous
                            (repeatable; e.g. --pin seed=3.noise_seed)
    --flamenco URL          send the shots (all, or --shot ones) to the Flamenco Manager at URL
                            instead of generating here: one farm task per shot, then one that
                            assembles; --farm-batch-script PATH is this script where the workers
                            see it (default: this file), --service/--model/--online go along
    --online                allow network access for this run (cloud services need it; Blender's
                            own switch is --online-mode, or Preferences > System > Network)
    --save PATH             where to save (default: over FILE.blend)
Prints one line per step, one per shot as its take is placed or fails, and a JSON summary of
the shots at the end; exits 1 if a shot failed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import sys
import tempfile
from importlib import import_module
from pathlib import Path

HERE = Path(__file__).resolve().parent
FINISHED = {'PLACED', 'SHORT', 'FAILED', 'CANCELLED'}  # a shot's statuses once its job is over


def _flush_c_stdio() -> None:
    """Push out what Blender printed through C's stdio buffer, so it lands where fd 1 points now."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, TypeError, AttributeError):  # no C library handle for the process (Windows)
        pass


@contextlib.contextmanager
def blender_output_hidden(tail_lines: int = 25):
    """Send everything printed to fds 1 and 2 while the block runs (Blender's C-level log too) to a
    scratch file; the block prints to the terminal through the `say` it is given.

    redirect_stdout only swaps Python's sys.stdout; Blender's render log and messages are written
    by C code straight to the file descriptors, so those are redirected. If the block fails with an
    error (not SystemExit: that carries its own message), Blender's last lines go to stderr.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    _flush_c_stdio()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log = tempfile.TemporaryFile()
    for fd in saved:
        os.dup2(log.fileno(), fd)

    def say(text: str) -> None:
        os.write(saved[1], (text + "\n").encode("utf-8"))

    failed = False
    try:
        yield say
    except Exception:
        failed = True
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _flush_c_stdio()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        if failed:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace").splitlines()[-tail_lines:]
            print("Blender's last output:\n" + "\n".join(tail), file=sys.stderr, flush=True)
        log.close()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch.py", description=__doc__.splitlines()[0])
    parser.add_argument("blend", nargs="?", help="the .blend to open (not needed inside `blender -b FILE`)")
    parser.add_argument("--analyze", action="store_true")
    parser.add_argument("--markers", choices=("bars", "beats"))
    parser.add_argument("--lay-out", dest="lay_out")
    parser.add_argument("--first-bar", type=int, default=1)
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--all", action="store_true", help="with --generate: shots that have takes too")
    parser.add_argument("--service", help="with --generate: the service for the shots generated")
    parser.add_argument("--model", help="with --generate: the service's model")
    parser.add_argument("--force", action="store_true", help="with --generate: never reuse an earlier take")
    parser.add_argument("--takes", type=int, default=1, metavar="N",
                        help="with --generate: N takes of each shot, each with its own seed (variations)")
    parser.add_argument("--shot", action="append", metavar="NAME", help="with --generate: only this shot (repeatable)")
    parser.add_argument("--workflow", help="with --generate: the workflow file (API format)")
    parser.add_argument("--pin", action="append", default=[], metavar="FIELD=NODE.INPUT",
                        help="with --workflow: where a field goes (repeatable)")
    parser.add_argument("--flamenco", metavar="URL", help="submit the shots to this Flamenco Manager")
    parser.add_argument("--farm-batch-script", help="with --flamenco: this script's path on the farm")
    parser.add_argument("--online", action="store_true", help="allow network access for this run")
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
        module = shotline_dev.enable()
        if args.blend:  # the add-on came after the file: resume and adopt its jobs as opening it would
            import_module(module.__name__ + ".addon.blend.runtime").resume_file_jobs()
    package = next((name for name in bpy.context.preferences.addons.keys() if name.split(".")[-1] == "shotline"),
                   None)
    if package is None:
        raise SystemExit("Shotline is not enabled in this Blender: install and enable the extension first")
    return bpy, sys.modules[package]


def choose_service(addon, todo: list, service_id: str | None, model: str | None) -> None:
    """Set --service and --model on the shots to generate; an unknown one is refused by name
    before anything else happens."""
    registry = import_module(addon.__name__ + ".addon.services.registry")

    def check_model(service) -> None:
        models = service.models()
        if model and models and model not in models:
            raise SystemExit(f"--model {model}: {service.id} has no such model (it has: {', '.join(models)})")

    if service_id:
        known = [s.id for s in registry.all_services()]
        if service_id not in known:
            raise SystemExit(f"--service {service_id}: no such service (there are: {', '.join(known)})")
        check_model(registry.get(service_id))
    for shot in todo:
        if service_id:
            shot.shotline.service = service_id
        if model is not None:
            check_model(registry.get(shot.shotline.service))
            shot.shotline.model = model


def send_to_farm(addon, scene, args: argparse.Namespace) -> int:
    flamenco = import_module(addon.__name__ + ".addon.flamenco")
    names = [s.name for s in import_module(addon.__name__ + ".addon.blend.shots").shots(scene)]
    unknown = [n for n in args.shot or () if n not in names]
    if unknown:
        raise SystemExit(f"--shot {unknown[0]}: no such shot in scene \"{scene.name}\"")
    if not args.blend:
        raise SystemExit("--flamenco needs the saved .blend the farm opens")
    try:
        job = flamenco.build_job(str(Path(args.blend).resolve()), args.shot or names,
                                 str(Path(args.farm_batch_script or __file__).resolve()), service=args.service or "",
                                 model=args.model or "", online=args.online)
        state = flamenco.Manager(args.flamenco).submit(job)
    except (ValueError, flamenco.FlamencoError) as err:
        raise SystemExit(str(err)) from None
    print(f"sent to {args.flamenco}: job {state.id} ({state.status}): {job['name']}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    args = parse(argv)
    with blender_output_hidden():  # importing bpy and opening the file: Blender's start-up chatter
        bpy, addon = load(args)
    if args.blend:
        print(f"opened {Path(args.blend).resolve()}", flush=True)
    glue = addon.__name__ + ".addon.blend."
    compat, runtime, shots = (import_module(glue + name) for name in ("compat", "runtime", "shots"))
    scene = bpy.context.scene

    def run_operator(name: str, **props) -> None:
        with compat.operators_on(scene):
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
    if args.online:
        bpy.context.preferences.system.use_online_access = True
    if args.flamenco:
        return send_to_farm(addon, scene, args)
    if args.generate:
        todo = [s for s in shots.shots(scene) if args.all or not len(s.shotline.takes)]
        if args.shot:
            names = {s.name for s in shots.shots(scene)}
            for name in args.shot:
                if name not in names:
                    raise SystemExit(f"--shot {name}: no such shot in scene \"{scene.name}\"")
            todo = [s for s in todo if s.name in args.shot]
        # A shot whose job was resumed or adopted from the journal on opening is waited for, never sent again.
        resumed = [s for s in todo if runtime.has_running_job(s)]
        todo = [s for s in todo if s not in resumed]
        if args.workflow:
            if not Path(args.workflow).is_file():
                raise SystemExit(f"--workflow {args.workflow}: no such file")
            scene.shotline.workflow = str(Path(args.workflow).resolve())
            args.service = args.service or "comfyui"
        for shot in todo if args.pin else ():
            shot.shotline.pins = ", ".join(args.pin)
        choose_service(addon, todo, args.service, args.model)
        queued, problems, reused = runtime.submit(scene, todo, force=args.force, variations=max(1, args.takes))
        for problem in problems:
            print(f"not queued: {problem}", flush=True)
        for note in reused:
            print(f"reused: {note}", flush=True)
        if resumed:
            print(f"resuming {len(resumed)} shots", flush=True)
        print(f"generating {queued} shots" if args.takes <= 1 else f"generating {queued} takes ({args.takes} a shot)",
              flush=True)
        running = resumed + [s for s in todo if s.shotline.status == 'QUEUED']
        finished = []
        with blender_output_hidden() as say:  # placing takes opens movies: Blender may talk about them

            def report_finished(_seconds: float = 0.0) -> None:
                for shot in running:
                    props = shot.shotline
                    if props.status in FINISHED and shot not in finished:
                        finished.append(shot)
                        detail = f": {props.status_message}" if props.status_message else ""
                        say(f"  {shot.name}: {props.status.lower()}{detail} ({len(finished)}/{len(running)})")

            runtime.run_until_idle(timeout=24 * 3600, on_pump=report_finished)
            report_finished()  # the last events are applied after the pumping loop
    target = args.save or args.blend or bpy.data.filepath
    if target:
        with blender_output_hidden():
            bpy.ops.wm.save_as_mainfile(filepath=str(Path(target).resolve()))
        print(f"saved {Path(target).resolve()}", flush=True)
    summary = [{"shot": s.name, "status": s.shotline.status, "message": s.shotline.status_message,
                "takes": len(s.shotline.takes), "frames": list(compat.span(s))} for s in shots.shots(scene)]
    print(json.dumps({"file": target, "shots": summary}), flush=True)
    return 1 if not args.shot and any(s["status"] == 'FAILED' for s in summary) else 0

if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    code = main(argv)
    sys.stdout.flush()
    import os

    os._exit(code)  # bpy 4.5 can hang at interpreter exit after render work

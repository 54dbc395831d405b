"""A director's whole session with the BUILT extension, in a fresh bpy process (run by test_session.py).

    python session_steps.py session --zip ZIP --work DIR   install the zip, work, crash mid-job
    python session_steps.py resume --work DIR              start again, reopen the file, finish the job
    python session_steps.py unsaved --work DIR             start again, a new film, crash mid-job just after
                                                           its first save (then `resume` it too)

Nothing here imports the checkout: the add-on is the one Blender installed from the zip, imported
as `bl_ext.user_default.shotline`. BLENDER_USER_RESOURCES and TMPDIR come from the caller (fresh
folders). Every step prints one line `@shotline-step {json}`: what it saw, or the error that
stopped the session (then no later step runs). The process ends with os._exit: bpy 4.5 may crash
at interpreter exit after render work, and the `session` phase ends like Blender crashing,
in the middle of a job.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
import wave
from pathlib import Path

import numpy as np

import bpy

MARK = "@shotline-step "
REPO, EXT_ID = "user_default", "shotline"
PKG = f"bl_ext.{REPO}.{EXT_ID}"
SCENE = "Scene"
CYRILLIC = "Певица идёт по ночному городу"
TEXT_SHOT = "Певица"  # a Cyrillic strip name: its takes go to a Cyrillic folder
PROMPT_1 = "Neon rain on an empty boulevard, slow dolly"
TEXT_2 = "Crowd dancing under flickering lights"  # typed into the Text strip itself
LONG_PROMPT = "One long take: the city wakes up at dawn"
LONG_FRAMES = 300
BLEND = "film.blend"

m = argparse.Namespace()  # the installed add-on's modules, once it is enabled


def emit(step: str, **data) -> None:
    print(MARK + json.dumps(dict(step=step, **data)), flush=True)


def run(steps, state: dict) -> bool:
    """Run the steps in order; stop at the first that raises (its error is reported, not a traceback)."""
    for fn in steps:
        name = fn.__name__.removeprefix("step_")
        started = time.monotonic()
        try:
            data = fn(state) or {}
        except Exception as err:  # reported as data: the test shows it; "Traceback" stays reserved for the add-on
            emit(name, error=f"{type(err).__name__}: {err}", where="".join(traceback.format_tb(err.__traceback__)),
                 seconds=round(time.monotonic() - started, 2))
            return False
        emit(name, **data, seconds=round(time.monotonic() - started, 2))
    return True


def leave(code: int = 0) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- the installed add-on -------------------------------------------------------------------------------------------

def load_modules() -> None:
    for name, path in (("runtime", "addon.blend.runtime"), ("song", "addon.blend.song"),
                       ("shots", "addon.blend.shots"), ("compat", "addon.blend.compat"),
                       ("mediafolder", "addon.blend.mediafolder"), ("framecode", "addon.framecode")):
        setattr(m, name, importlib.import_module(f"{PKG}.{path}"))


def extension_facts() -> dict:
    """Is Shotline enabled as an extension, from the user's extensions folder (never the checkout)?"""
    enabled = [a.module for a in bpy.context.preferences.addons if EXT_ID in a.module]
    package = sys.modules.get(PKG)
    user = os.environ["BLENDER_USER_RESOURCES"]
    site = glob.glob(os.path.join(bpy.utils.user_resource('EXTENSIONS'), ".local", "lib", "python*",
                                  "site-packages", "PIL"))
    return {
        "enabled": enabled,
        "package_file": getattr(package, "__file__", None),
        "package_in_user_folder": bool(package and os.path.realpath(package.__file__).startswith(
            os.path.realpath(user) + os.sep)),
        "checkout_importable": importlib.util.find_spec("shotline") is not None,
        "operators_registered": all(hasattr(bpy.types, f"SEQUENCER_OT_shotline_{n}")
                                    for n in ("make_shots", "analyze_song", "lay_out", "generate", "snap",
                                              "use_take", "add_shot")),
        "pillow_wheel_installed": bool(site),
    }


# -- the timeline ---------------------------------------------------------------------------------------------------

def scene():
    return bpy.data.scenes[SCENE]


def all_strips(sc) -> list:
    return list(m.compat.strips_all(sc.sequence_editor))


def strip(sc, name: str):
    found = next((s for s in all_strips(sc) if s.name == name), None)
    if found is None:
        raise LookupError(f"no strip named {name!r}; strips: {[s.name for s in all_strips(sc)]}")
    return found


def select(sc, chosen, active=None) -> None:
    """Select exactly `chosen`, as clicks in the timeline do."""
    for s in all_strips(sc):
        s.select = s in chosen
    sc.sequence_editor.active_strip = active or (chosen[0] if chosen else None)


def op(sc, name: str, *args, **kw):
    """A Shotline operator, as its button runs it: the scene-only override the tests use (a window or
    area override while worker threads run crashes bpy 4.5)."""
    with m.compat.operators_on(sc):
        return getattr(bpy.ops.sequencer, name)(*args, **kw)


def editor_op(sc, name: str, **kw):
    """Blender's own timeline editing (Shift+D, K): needs a sequencer area. Only while no job runs."""
    assert not m.runtime.busy(), f"{name} with a window override while jobs run"
    window = bpy.context.window_manager.windows[0]
    area = window.screen.areas[0]
    area.type = 'SEQUENCE_EDITOR'
    region = next(r for r in area.regions if r.type == 'WINDOW')
    with bpy.context.temp_override(window=window, area=area, region=region, **m.compat.scene_override(sc)):
        return getattr(bpy.ops.sequencer, name)(**kw)


def pump(timeout: float = 150) -> float:
    started = time.monotonic()
    m.runtime.run_until_idle(timeout, 0.05)
    return round(time.monotonic() - started, 2)


def file_facts(path: str) -> dict:
    absolute = bpy.path.abspath(path)
    return {"path": path, "abs": os.path.realpath(absolute), "exists": os.path.isfile(absolute)}


def describe(sc, shot) -> dict:
    props = shot.shotline
    take_strip = m.shots.take_strip(sc, shot)
    return {
        "name": shot.name, "type": shot.type, "text": getattr(shot, "text", None), "id": props.shot_id,
        "channel": shot.channel,
        "span": list(m.compat.span(shot)), "status": props.status, "message": props.status_message,
        "prompt": m.shots.prompt(shot), "placeholder": props.placeholder, "job": props.job_id,
        "active_take": props.active_take,
        "takes": [dict(file_facts(t.filepath), prompt=t.prompt, seed=t.seed, fps=round(t.fps, 5), frames=t.frames)
                  for t in props.takes],
        "take_strip": None if take_strip is None else dict(
            file_facts(take_strip.filepath), name=take_strip.name, channel=take_strip.channel,
            span=list(m.compat.span(take_strip)), type=take_strip.type),
        "loops": len(m.shots.loop_strips(sc, shot)),
    }


def all_shots(sc) -> dict:
    return {s.name: describe(sc, s) for s in m.shots.shots(sc)}


def timeline(sc) -> dict:
    """Every strip by kind: a take strip is silent, and nothing is left behind."""
    found = {"sound": [], "take": [], "loop": [], "movie_plain": []}
    for s in all_strips(sc):
        if s.type == 'SOUND':
            found["sound"].append(s.name)
        elif s.shotline.role in {'TAKE', 'LOOP'}:
            found[s.shotline.role.lower()].append(s.name)
        elif s.type == 'MOVIE':
            found["movie_plain"].append(s.name)
    return {k: sorted(v) for k, v in found.items()}


def frame_codes(sc, shot_name: str, offsets, work: Path) -> dict:
    """Render the sequencer at `offsets` from the shot's first frame and read the frame code shown
    (as tests/vse.py:shown_source_frame does). At the scene's own rate it must be the offset."""
    from PIL import Image

    left, _right = m.compat.span(strip(sc, shot_name))
    ed = sc.sequence_editor
    ed.use_cache_raw = ed.use_cache_final = False
    sc.render.use_sequencer = True
    sc.view_settings.view_transform = 'Standard'
    sc.render.image_settings.file_format = 'PNG'
    out = work / "frame.png"
    sc.render.filepath = str(out)
    codes = {}
    for offset in offsets:
        sc.frame_current = left + offset
        with bpy.context.temp_override(scene=sc):
            bpy.ops.render.render(write_still=True)
        with Image.open(out) as image:
            codes[str(offset)] = m.framecode.read(np.asarray(image.convert("RGB")))
    return codes


# -- phase 1: install and work --------------------------------------------------------------------------------------

def step_install(state):
    result = bpy.ops.extensions.package_install_files(filepath=state["zip"], repo=REPO, enable_on_install=True)
    if PKG not in sys.modules:
        raise AssertionError(f"Install from Disk returned {sorted(result)} but {PKG} was not enabled; "
                             f"enabled: {[a.module for a in bpy.context.preferences.addons]}")
    load_modules()
    # Blender saves the preferences on quit (auto-save): the next start finds Shotline enabled. This
    # process will not quit normally, so save them now, as that quit would.
    bpy.ops.wm.save_userpref()
    return dict(result=sorted(result), **extension_facts())


def step_scene(state):
    sc = bpy.context.scene
    sc.name = SCENE
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 160, 90, 100
    sc.sequence_editor_create()
    window = bpy.context.window_manager.windows[0]
    if m.compat.HAS_SEQUENCER_SCENE:  # the Video Editing workspace shows this scene
        window.workspace.sequencer_scene = sc
    preset = bpy.utils.preset_find("29.97", "framerate")
    with bpy.context.temp_override(scene=sc):
        bpy.ops.script.execute_preset(filepath=preset, menu_idname="RENDER_MT_framerate_presets")
    return {"fps": sc.render.fps, "fps_base": sc.render.fps_base, "preset": os.path.basename(preset or "")}


def step_song(state):
    import signals  # numpy only (tests/signals.py)

    song = signals.build("session_120", [signals.Section(10, 120)], signals.Groove(), seed=1)
    path = state["work"] / "song.wav"
    pcm = (np.clip(song.audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(song.rate)
        out.writeframes(pcm.tobytes())
    sc = scene()
    sound = m.compat.strips(sc.sequence_editor).new_sound(name="Song", filepath=str(path), channel=1, frame_start=1)
    left, right = m.compat.span(sound)
    sc.frame_start, sc.frame_end = 1, right
    return {"span": [left, right], "duration": round(song.duration, 3),
            "downbeats": [round(float(t), 4) for t in song.downbeats]}


def step_make_shots(state):
    sc = scene()
    text = m.compat.new_effect(m.compat.strips(sc.sequence_editor), TEXT_SHOT, 'TEXT', 2, 400, 90)
    text.text = CYRILLIC
    select(sc, [text])
    result = op(sc, "shotline_make_shots")
    return {"result": sorted(result), "shot": describe(sc, text)}


def step_analyze(state):
    """The Analyze Song button (INVOKE): it may run on a worker thread; drive it to the end."""
    sc = scene()
    select(sc, [])
    properties = bpy.ops.sequencer.shotline_analyze_song.get_rna_type().properties.keys()
    if "background" in properties:  # what the button's invoke sets (INVOKE needs a window in context)
        result = op(sc, "shotline_analyze_song", markers='BARS', background=True)
    else:
        result = op(sc, "shotline_analyze_song", 'INVOKE_DEFAULT', markers='BARS')
    background = hasattr(m.song, "analysing") and m.song.analysing(sc) is not None
    if background:
        m.song.run_until_analysed(60, 0.05)  # the timer's work, where timers never fire
    analysis = m.song.analysis(sc)
    if analysis is None:
        raise AssertionError(f"no analysis stored; problem: {getattr(m.song, 'problem', lambda s: '')(sc)!r}")
    bars = [a for a, _b in m.song.beats.bars(analysis)]
    return {"result": sorted(result), "background": background, "bpm": round(float(analysis.bpm), 2),
            "beats_per_bar": analysis.beats_per_bar, "bars": len(bars),
            "bar_frames": m.song.frames(sc, bars),
            "markers": sorted(mk.frame for mk in sc.timeline_markers if mk.name.startswith(m.song.MARKER_PREFIX))}


def step_lay_out(state):
    sc = scene()
    before = {s.name for s in m.shots.shots(sc)}
    result = op(sc, "shotline_lay_out", mode='BARS', bars=2, first_bar=1, last_bar=4, channel=2)
    made = sorted(s.name for s in m.shots.shots(sc) if s.name not in before)
    state["laid_out"] = made
    return {"result": sorted(result), "made": made, "shots": {n: describe(sc, strip(sc, n)) for n in made}}


def step_placeholder_skipped(state):
    """Generate with the laid-out shots still showing only their placeholder: nothing is sent."""
    sc = scene()
    laid = [strip(sc, n) for n in state["laid_out"]]
    select(sc, laid)
    try:
        result, error = sorted(op(sc, "shotline_generate")), ""
    except RuntimeError as err:  # an ERROR report raises in bpy.ops
        result, error = ["ERROR_REPORT"], str(err)
    jobs = len(m.runtime.queue().jobs)
    return {"result": result, "report": error, "jobs": jobs,
            "shots": {s.name: describe(sc, s) for s in laid}}


def step_prompts(state):
    sc = scene()
    first, second = (strip(sc, n) for n in state["laid_out"])
    first.shotline.prompt = PROMPT_1  # the Prompt field
    second.text = TEXT_2  # or the Text strip's own text
    return {"shots": {s.name: describe(sc, s) for s in (first, second)}}


def step_generate(state):
    sc = scene()
    chosen = [strip(sc, n) for n in state["laid_out"]] + [strip(sc, TEXT_SHOT)]
    select(sc, chosen)
    result = op(sc, "shotline_generate")
    queued = {s.name: s.shotline.status for s in chosen}
    waited = pump()
    return {"result": sorted(result), "queued": queued, "pumped": waited,
            "unsaved_root": os.path.realpath(m.mediafolder.unsaved_root()),
            "tmp": os.path.realpath(tempfile.gettempdir()), "shots": all_shots(sc), "timeline": timeline(sc)}


def step_sync(state):
    sc = scene()
    first = state["laid_out"][0]
    n1 = m.compat.span(strip(sc, first))
    n2 = m.compat.span(strip(sc, TEXT_SHOT))
    length1, length2 = n1[1] - n1[0], n2[1] - n2[0]
    return {"codes": {first: frame_codes(sc, first, (0, 1, length1 // 2, length1 - 1), state["work"]),
                      TEXT_SHOT: frame_codes(sc, TEXT_SHOT, (0, length2 // 3, length2 - 1), state["work"])}}


def step_duplicate_split(state):
    """Shift+D on the first shot (then moved to a free place, as the grab after it does) and K in the
    middle of the second; then Generate the two copies."""
    sc = scene()
    first, second = (strip(sc, n) for n in state["laid_out"])
    before = {s.name for s in all_strips(sc)}
    select(sc, [first])
    dup = sorted(editor_op(sc, "duplicate"))
    copies = [s for s in all_strips(sc) if s.name not in before]
    if len(copies) != 1:
        raise AssertionError(f"Shift+D made {[s.name for s in copies]}")
    copy = copies[0]
    m.compat.set_content_start(copy, 520)  # the grab: to a free place after the last shot
    copy.channel = 2
    left, right = m.compat.span(second)
    cut = (left + right) // 2
    before = {s.name for s in all_strips(sc)}
    select(sc, [second])
    split = sorted(editor_op(sc, "split", frame=cut, type='SOFT', side='BOTH'))
    halves = [s for s in all_strips(sc) if s.name not in before]
    if len(halves) != 1:
        raise AssertionError(f"K made {[s.name for s in halves]}")
    right_half = halves[0]
    state["copy"], state["right_half"] = copy.name, right_half.name
    edited = {"copy": describe(sc, copy), "right_half": describe(sc, right_half),
              "first": describe(sc, first), "second": describe(sc, second)}
    select(sc, [copy, right_half])
    result = op(sc, "shotline_generate")
    resolved = {"copy": describe(sc, copy), "right_half": describe(sc, right_half),
                "first": describe(sc, first), "second": describe(sc, second)}
    waited = pump()
    codes = {}
    for s in (copy, right_half, second):
        length = m.compat.span(s)[1] - m.compat.span(s)[0]
        codes[s.name] = frame_codes(sc, s.name, (0, length - 1), state["work"])
    return {"duplicate": dup, "split": split, "cut": cut, "edited": edited, "generate": sorted(result),
            "resolved": resolved, "pumped": waited, "shots": all_shots(sc), "timeline": timeline(sc),
            "codes": codes}


def step_snap(state):
    """Drag the first shot's edges off the grid (left 3 frames in, right 40 frames in), then Snap Shots."""
    sc = scene()
    first = strip(sc, state["laid_out"][0])
    left, right = m.compat.span(first)
    m.compat.set_span(first, left + 3, right - 40)
    dragged = describe(sc, first)
    select(sc, [first])
    result = op(sc, "shotline_snap", to='BAR')
    snapped = describe(sc, first)
    length = snapped["span"][1] - snapped["span"][0]
    return {"before": [left, right], "dragged": dragged, "result": sorted(result), "snapped": snapped,
            "codes": frame_codes(sc, first.name, (0, length - 1), state["work"])}


def step_takes(state):
    """A second take of the Cyrillic shot; choose takes by clicking a row, and with Use Take."""
    sc = scene()
    shot = strip(sc, TEXT_SHOT)
    select(sc, [shot])
    result = op(sc, "shotline_generate")
    pumped = pump()
    second = describe(sc, shot)
    shot.shotline.active_take = 0  # clicking the first row of the takes list
    row = describe(sc, shot)
    row_codes = frame_codes(sc, TEXT_SHOT, (0, 30), state["work"])
    select(sc, [shot])
    use = sorted(op(sc, "shotline_use_take", index=1))
    used = describe(sc, shot)
    return {"result": sorted(result), "pumped": pumped, "after_generate": second, "after_row": row,
            "row_codes": row_codes, "use_take": use, "after_use_take": used}


def step_save(state):
    sc = scene()
    before = all_shots(sc)
    path = state["work"] / BLEND
    result = bpy.ops.wm.save_as_mainfile(filepath=str(path))
    unsaved = m.mediafolder.unsaved_root()
    return {"result": sorted(result), "before": before, "after": all_shots(scene()),
            "unsaved_exists": unsaved.exists(), "blend": bpy.data.filepath, "timeline": timeline(scene())}


def step_reopen(state):
    path = state["work"] / BLEND
    result = bpy.ops.wm.open_mainfile(filepath=str(path))
    sc = scene()
    analysis = m.song.analysis(sc)
    return {"result": sorted(result), "shots": all_shots(sc), "blend": bpy.data.filepath, "timeline": timeline(sc),
            "analysis": analysis is not None, "song": getattr(m.song.strip(sc), "name", None),
            "codes": frame_codes(sc, TEXT_SHOT, (0, 45), state["work"])}


def picture(sc, frame: int, work: Path) -> np.ndarray:
    """The sequencer's picture at `frame` (no caches), as frame_codes renders it."""
    from PIL import Image

    sc.frame_current = frame
    out = work / "picture.png"
    sc.render.filepath = str(out)
    with bpy.context.temp_override(scene=sc):
        bpy.ops.render.render(write_still=True)
    with Image.open(out) as image:
        return np.asarray(image.convert("RGB")).astype(float)


def step_iterate(state):
    """Two new shots: the second continues from the first's last frame, as two variations; then
    lock, regenerate (refused), unlock, compare, delete a take to the trash, empty the trash, save."""
    sc = scene()
    sc.frame_current = 1
    made = {}
    for name, frame, prompt in (("Сцена А", 1, "Дождь на пустом бульваре"), ("Səhnə B", 41, "Qəmgin mahnı, gecə")):
        sc.frame_current = frame
        op(sc, "shotline_add_shot", prompt=prompt, length=40, channel=7)
        made[name] = sc.sequence_editor.active_strip
        made[name].name = name
    first, second = made.values()
    select(sc, [first], first)
    generated = sorted(op(sc, "shotline_generate"))
    pump()
    second.shotline.first_frame.source = 'PREVIOUS'
    select(sc, [second], second)
    variations = sorted(op(sc, "shotline_generate", variations=2))
    pump()
    after_variations = describe(sc, second)
    work = state["work"]
    last = picture(sc, m.compat.span(first)[1] - 1, work)
    opening = picture(sc, m.compat.span(second)[0], work)
    h, w = last.shape[:2]
    centre = (slice(h // 4, h * 3 // 5), slice(w // 4, w * 3 // 4))  # clear of the shot name, code and caption
    continuity = float(np.abs(last[centre] - opening[centre]).mean())
    unrelated = float(np.abs(picture(sc, m.compat.span(first)[0], work)[centre] - opening[centre]).mean())
    second.shotline.locked = True
    try:
        op(sc, "shotline_generate", seed='NEW')
        locked = "generated"
    except RuntimeError as err:
        locked = str(err)
    second.shotline.locked = False
    compared = sorted(op(sc, "shotline_compare_takes", mode='WIPE'))
    compare_strips = len([s for s in all_strips(sc) if s.shotline.role == 'COMPARE'])
    ended = sorted(op(sc, "shotline_end_compare"))
    deleted = sorted(op(sc, "shotline_delete_take", index=0))
    trashed = [file_facts(t.filepath) for t in sc.shotline.trash]
    emptied = sorted(op(sc, "shotline_empty_trash"))
    saved = sorted(bpy.ops.wm.save_mainfile())
    return {"generate": generated, "variations": variations, "after_variations": after_variations,
            "continuity": continuity, "unrelated": unrelated, "locked": locked, "delete": deleted,
            "trashed": trashed, "trash_after": [file_facts(t["path"])["exists"] for t in trashed],
            "compare": compared, "compare_strips": compare_strips, "end_compare": ended,
            "compare_left": len([s for s in all_strips(sc) if s.shotline.role == 'COMPARE']),
            "empty_trash": emptied, "save": saved, "first": describe(sc, first), "second": describe(sc, second)}


def start_long_job(sc):
    """Add Shot with a long prompt at the playhead, Generate it, and pump until it is being drawn."""
    added = sorted(op(sc, "shotline_add_shot", prompt=LONG_PROMPT, length=LONG_FRAMES, channel=2))
    shot = sc.sequence_editor.active_strip
    select(sc, [shot])
    result = sorted(op(sc, "shotline_generate"))
    deadline = time.monotonic() + 60
    while not (shot.shotline.status == 'GENERATING' and shot.shotline.progress > 0):
        if time.monotonic() > deadline or shot.shotline.status in {'PLACED', 'FAILED', 'CANCELLED', 'SHORT'}:
            raise AssertionError(f"the long job did not start: {shot.shotline.status} {shot.shotline.status_message}")
        m.runtime.pump()
        time.sleep(0.05)
    return added, shot, result


def step_crash_mid_job(state):
    """Add a long shot, generate it, save while it is being generated, and die (Blender crashing)."""
    sc = scene()
    sc.frame_current = 700
    added, shot, result = start_long_job(sc)
    state["long"] = shot.name
    saved = sorted(bpy.ops.wm.save_mainfile())
    children = []
    for task in glob.glob("/proc/self/task/*/children"):
        with open(task) as f:
            children += [int(p) for p in f.read().split()]
    return {"add_shot": added, "generate": result, "long": describe(scene(), shot), "save": saved,
            "progress": round(shot.shotline.progress, 3), "records": json.loads(sc.shotline.jobs or "[]"),
            "children": children}


def step_unsaved_mid_job(state):
    """A new film, never saved: generate a long shot, save it for the first time while the job runs, crash."""
    step_scene(state)
    sc = scene()
    sc.frame_current = 1
    added, shot, result = start_long_job(sc)
    unsaved = os.path.realpath(m.mediafolder.unsaved_root())
    saved = sorted(bpy.ops.wm.save_as_mainfile(filepath=str(state["work"] / BLEND)))
    return {"add_shot": added, "generate": result, "long": describe(scene(), shot), "save": saved,
            "unsaved_root": unsaved, "progress": round(shot.shotline.progress, 3),
            "records": json.loads(scene().shotline.jobs or "[]")}


# -- phase 2: start again -------------------------------------------------------------------------------------------

def step_start(state):
    """Blender starting: the user's preferences, with the installed extension enabled."""
    result = bpy.ops.wm.read_userpref()
    load_modules()
    return dict(result=sorted(result), **extension_facts())


def step_resume(state):
    path = state["work"] / BLEND
    result = bpy.ops.wm.open_mainfile(filepath=str(path))
    sc = scene()
    long_name = next(s.name for s in m.shots.shots(sc) if s.shotline.prompt == LONG_PROMPT)
    state["long"] = long_name
    opened = describe(sc, strip(sc, long_name))
    busy = m.runtime.busy()
    jobs = [{"id": j.id, "state": j.state, "remote_id": j.remote_id} for j in m.runtime.queue().jobs]
    pumped = pump()
    shot = strip(sc, long_name)
    left, right = m.compat.span(shot)
    length = right - left
    codes = frame_codes(sc, long_name, (0, length // 2, length - 1), state["work"])
    placed = all_shots(sc)
    saved = sorted(bpy.ops.wm.save_mainfile())
    tmp = tempfile.gettempdir()
    return {"result": sorted(result), "opened": opened, "busy_on_open": busy, "jobs_on_open": jobs,
            "pumped": pumped, "codes": codes, "shots": placed, "timeline": timeline(sc), "save": saved,
            "jobs_after_save": scene().shotline.jobs,
            "temp_left": sorted(os.path.basename(p) for p in glob.glob(os.path.join(tmp, "shotline-*")))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=("session", "resume", "unsaved"))
    parser.add_argument("--zip")
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args()
    state = {"zip": args.zip, "work": args.work}
    if args.phase == "session":
        steps = (step_install, step_scene, step_song, step_make_shots, step_analyze, step_lay_out,
                 step_placeholder_skipped, step_prompts, step_generate, step_sync, step_duplicate_split,
                 step_snap, step_takes, step_save, step_reopen, step_iterate, step_crash_mid_job)
    elif args.phase == "unsaved":
        steps = (step_start, step_unsaved_mid_job)
    else:
        steps = (step_start, step_resume)
    ok = run(steps, state)
    if ok and args.phase in {"session", "unsaved"}:
        emit("crash")  # mid-job, as Blender crashing or being killed: no unregister, no clean-up
    leave(0 if ok else 1)


if __name__ == "__main__":
    try:
        main()
    except BaseException as err:  # noqa: BLE001  argparse errors and the like: still leave at once
        emit("fatal", error=f"{type(err).__name__}: {err}")
        leave(2)

"""A director's whole session on the BUILT extension zip, installed and enabled as a user would.

The zip is built once (scripts/build_extension.py --output, into a temporary folder), then
tests/session_steps.py runs in fresh processes of this venv's Python with an empty
BLENDER_USER_RESOURCES and TMPDIR of their own (this pytest process may have the checkout
enabled as "shotline"; the session must only ever see `bl_ext.user_default.shotline`):

1. `session`: install from disk, 29.97 fps, a song, Make Shots from a Cyrillic Text strip,
   Analyze Song, Lay Out Shots, Generate (placeholders are skipped), sync by rendering,
   Shift+D and K, Snap Shots, a second take and choosing takes, save, reopen; then a long
   shot is generated, the file saved mid-job and the process ended with os._exit (a crash).
2. `resume`: Blender starting again with the user's preferences, the file reopened: the
   job is resumed and placed.
3. `unsaved`, then `resume` again: a new film whose job was queued before its first save,
   saved for the first time mid-job, then a crash; reopened, the take lands next to the .blend.

Each step prints a JSON line; the tests below assert on them, one test per part of the session.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEPS = Path(__file__).with_name("session_steps.py")
MARK = "@shotline-step "
MODULE = "bl_ext.user_default.shotline"
NTSC_30 = 30000 / 1001
CYRILLIC = "Певица идёт по ночному городу"
TEXT_SHOT = "Певица"
PROMPT_1 = "Neon rain on an empty boulevard, slow dolly"
TEXT_2 = "Crowd dancing under flickering lights"
LONG_PROMPT = "One long take: the city wakes up at dawn"
LONG_FRAMES = 300
SONG_START = 1  # the song strip's first frame
BUILD_TIMEOUT = 600  # downloads the Pillow wheels from PyPI
SESSION_TIMEOUT = 240
RESUME_TIMEOUT = 180

# Blender's platform names as build_extension.py writes them into the zip names.
ZIP_PLATFORMS = {("linux", "x86_64"): "linux_x64", ("darwin", "arm64"): "macos_arm64",
                 ("darwin", "x86_64"): "macos_x64", ("win32", "amd64"): "windows_x64"}


# -- running the phases ---------------------------------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    returncode: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool = False
    steps: dict = field(default_factory=dict)

    def tail(self, lines: int = 40) -> str:
        text = (self.out + "\n--- stderr ---\n" + self.err).splitlines()
        return "\n".join(line[:400] for line in text[-lines:])

    def step(self, name: str) -> dict:
        """The record of step `name`; fails with the reason when the process never got there."""
        record = self.steps.get(name)
        if record is not None and "error" not in record:
            return record
        if record is not None:
            pytest.fail(f"step '{name}' of the {self.name} process failed: {record['error']}\n"
                        f"{record.get('where', '')}")
        failed = next((r for r in self.steps.values() if "error" in r), None)
        if failed:
            why = f"step '{failed['step']}' failed first: {failed['error']}\n{failed.get('where', '')}"
        elif self.timed_out:
            why = f"the process was killed after {self.seconds:.0f} s"
        else:
            why = f"the process ended with exit code {self.returncode}"
        pytest.fail(f"the {self.name} process never finished step '{name}': {why}\nlast output:\n{self.tail()}")


def _run(phase: str, world: dict, work: Path, timeout: float, *extra: str) -> Phase:
    cmd = [sys.executable, str(STEPS), phase, "--work", str(work), *extra]
    started = time.monotonic()
    # A session of its own: what a crashed step process leaves running (its animatic child) is ended with it.
    proc = subprocess.Popen(cmd, cwd=work, env=world["env"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                            errors="replace", start_new_session=hasattr(os, "killpg"))
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _end_group(proc.pid)
        out, err = proc.communicate()
    finally:
        _end_group(proc.pid)
    result = Phase(f"{phase} ({work.name})", proc.returncode, out, err, time.monotonic() - started, timed_out)
    for line in out.splitlines():
        if line.startswith(MARK):
            record = json.loads(line[len(MARK):])
            result.steps[record["step"]] = record
    return result


def _end_group(pgid: int) -> None:
    """End what is left of a step process's own process group (started by this test, by its id)."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    """scripts/build_extension's build (the same script, this venv's Python), once, into a temporary folder."""
    key = (sys.platform, platform.machine().lower())
    name = ZIP_PLATFORMS.get(key)
    if name is None:
        pytest.skip(f"no extension zip is built for this platform {key}")
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_extension.py"), "--output", str(dist)],
                          cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, f"building the extension failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    zips = sorted(dist.glob(f"shotline-*-{name}.zip"))
    assert len(zips) == 1, f"expected one {name} zip in {sorted(p.name for p in dist.iterdir())}"
    return zips[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("session")
    folders = {name: base / name for name in ("user", "tmp", "work", "new_film")}
    for folder in folders.values():
        folder.mkdir()
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(folders["user"]), TMPDIR=str(folders["tmp"]),
               TEMP=str(folders["tmp"]), TMP=str(folders["tmp"]), PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)  # nothing but the installed extension
    return dict(folders, env=env)


@pytest.fixture(scope="module")
def session(world, built_zip) -> Phase:
    return _run("session", world, world["work"], SESSION_TIMEOUT, "--zip", str(built_zip))


@pytest.fixture(scope="module")
def resumed(world, session) -> Phase:
    session.step("crash")  # the session must have ended mid-job, as planned
    return _run("resume", world, world["work"], RESUME_TIMEOUT)


@pytest.fixture(scope="module")
def unsaved_crash(world, resumed) -> Phase:
    """After the session (the extension stays installed): a new film, first saved mid-job, then a crash."""
    return _run("unsaved", world, world["new_film"], RESUME_TIMEOUT)


@pytest.fixture(scope="module")
def unsaved_resumed(world, unsaved_crash) -> Phase:
    unsaved_crash.step("crash")
    return _run("resume", world, world["new_film"], RESUME_TIMEOUT)


# -- helpers --------------------------------------------------------------------------------------------------------

def _no_traceback(phase: Phase) -> None:
    assert not phase.timed_out and phase.returncode == 0, (
        f"the {phase.name} process ended with exit code {phase.returncode}"
        f"{' (killed: too slow)' if phase.timed_out else ''}:\n{phase.tail()}")
    for stream, text in (("stdout", phase.out), ("stderr", phase.err)):
        at = text.find("Traceback")
        assert at < 0, f"a traceback in the {phase.name} process's {stream}:\n{text[max(0, at - 500):at + 3000]}"


def _expected_bar_frames(session: Phase) -> list[int]:
    """The frames nearest the song's true downbeats (the song starts on frame SONG_START)."""
    return [round(SONG_START + t * NTSC_30) for t in session.step("song")["downbeats"]]


def _close(a: list[int], b: list[int], frames: int = 1) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= frames for x, y in zip(a, b))


def _check_placed(shot: dict, under: str | None = None) -> None:
    """PLACED, its take strip exactly on its span and above it, the active take's file there."""
    name = shot["name"]
    assert shot["status"] == 'PLACED', f"{name}: {shot['status']} ({shot['message']})"
    assert shot["takes"], f"{name}: placed without a take record"
    strip = shot["take_strip"]
    assert strip is not None, f"{name}: no take strip"
    assert strip["type"] == 'MOVIE'
    assert strip["span"] == shot["span"], f"{name}: take strip on {strip['span']}, shot on {shot['span']}"
    assert strip["channel"] > shot["channel"], f"{name}: take strip on channel {strip['channel']}"
    assert 0 <= shot["active_take"] < len(shot["takes"])
    active = shot["takes"][shot["active_take"]]
    assert strip["path"] == active["path"], f"{name}: the take strip shows {strip['path']}, the active take is " \
                                            f"{active['path']}"
    for record in shot["takes"] + [strip]:
        assert record["exists"], f"{name}: {record['path']} does not exist ({record['abs']})"
        if under is not None:
            assert record["abs"].startswith(under + os.sep), f"{name}: {record['abs']} is not in {under}"


def _check_codes(codes: dict, what: str) -> None:
    """At the scene's own rate the frame code shown is the offset into the shot, exactly."""
    wrong = {offset: code for offset, code in codes.items() if code != int(offset)}
    assert not wrong, f"{what}: frame codes read {codes} (offset: code); off at {wrong}"


def _essentials(shots: dict, paths: bool = True) -> dict:
    """What must survive saving and reopening (the files' paths too, unless they were just moved)."""
    def where(record):
        return record["path"] if paths else None

    return {name: {"id": s["id"], "span": s["span"], "status": s["status"], "prompt": s["prompt"],
                   "active_take": s["active_take"],
                   "takes": [(where(t), t["seed"], t["frames"]) for t in s["takes"]],
                   "take_strip": s["take_strip"] and (where(s["take_strip"]), s["take_strip"]["span"],
                                                      s["take_strip"]["channel"])}
            for name, s in shots.items()}


# -- the session ----------------------------------------------------------------------------------------------------

def test_session_output_has_no_traceback(session):
    session.step("crash")
    _no_traceback(session)


def test_the_zip_installs_and_enables_as_an_extension(session):
    install = session.step("install")
    assert install["result"] == ["FINISHED"]
    assert install["enabled"] == [MODULE], f"enabled add-ons: {install['enabled']}"
    assert install["package_in_user_folder"], f"Shotline was imported from {install['package_file']}"
    assert not install["checkout_importable"], "the checkout is importable as `shotline` in the session process"
    assert install["operators_registered"], "Shotline's operators are not registered"
    assert install["pillow_wheel_installed"], "the zip's Pillow wheel was not installed into the extensions folder"


def test_the_scene_runs_at_2997_with_the_song(session):
    scene = session.step("scene")
    assert (scene["fps"], round(scene["fps_base"], 6)) == (30, 1.001), scene
    song = session.step("song")
    assert song["span"][0] == SONG_START and song["span"][1] > SONG_START + 19 * NTSC_30, song


def test_make_shots_from_a_cyrillic_text_strip(session):
    made = session.step("make_shots")
    assert made["result"] == ["FINISHED"]
    shot = made["shot"]
    assert shot["name"] == TEXT_SHOT and shot["id"], shot
    assert shot["prompt"] == CYRILLIC, f"the Text strip's text is the prompt: {shot['prompt']!r}"
    assert shot["status"] == 'NONE' and not shot["takes"]


def test_analyze_song_finds_the_grid(session):
    analysed = session.step("analyze")
    assert analysed["result"] == ["FINISHED"]
    assert abs(analysed["bpm"] - 120) < 0.5, analysed["bpm"]
    assert analysed["beats_per_bar"] == 4
    expected = _expected_bar_frames(session)
    assert _close(analysed["bar_frames"], expected), f"bars on {analysed['bar_frames']}, the song's on {expected}"
    assert analysed["markers"] == analysed["bar_frames"], "Bar Markers: one marker on every bar"


def test_lay_out_every_two_bars(session):
    laid = session.step("lay_out")
    assert laid["result"] == ["FINISHED"] and len(laid["made"]) == 2, laid["made"]
    bars = session.step("analyze")["bar_frames"]
    first, second = (laid["shots"][name] for name in laid["made"])
    assert first["span"] == [bars[0], bars[2]] and second["span"] == [bars[2], bars[4]], (first["span"],
                                                                                         second["span"])
    for shot, label in ((first, "bars 1-2"), (second, "bars 3-4")):
        assert shot["placeholder"] == label and shot["text"] == label, shot
        assert shot["prompt"] == "", f"{shot['name']}: its placeholder counts as a prompt: {shot['prompt']!r}"


def test_generate_skips_shots_with_only_their_placeholder(session):
    skipped = session.step("placeholder_skipped")
    assert skipped["result"] == ["ERROR_REPORT"], f"Generate ran with placeholders only: {skipped['result']}"
    assert "no prompt yet" in skipped["report"], skipped["report"]
    assert skipped["jobs"] == 0, "a placeholder was sent to the service"
    for name, shot in skipped["shots"].items():
        assert shot["status"] == 'NONE' and shot["message"].lower().startswith("no prompt yet"), shot
        assert f"{name}: no prompt yet, skipped" in session.out, f"no warning for {name}"


def test_generate_places_every_selected_shot_on_its_span(session):
    generated = session.step("generate")
    assert generated["result"] == ["FINISHED"]
    assert set(generated["queued"].values()) == {'QUEUED'}, generated["queued"]
    unsaved, tmp = generated["unsaved_root"], generated["tmp"]
    assert unsaved.startswith(tmp + os.sep), f"takes of an unsaved file go to {unsaved}, not the temp folder {tmp}"
    first, second = session.step("lay_out")["made"]
    prompts = {first: PROMPT_1, second: TEXT_2, TEXT_SHOT: CYRILLIC}
    for name, prompt in prompts.items():
        shot = generated["shots"][name]
        _check_placed(shot, under=unsaved)
        assert len(shot["takes"]) == 1
        take = shot["takes"][0]
        assert take["prompt"] == prompt, f"{name}: sent {take['prompt']!r}"
        assert abs(take["fps"] - NTSC_30) < 1e-3, f"{name}: take at {take['fps']} fps"
        assert take["frames"] == shot["span"][1] - shot["span"][0], f"{name}: {take['frames']} frames"
    assert generated["timeline"]["sound"] == ["Song"], f"the take strips are not silent: {generated['timeline']}"


def test_takes_play_in_sync_at_2997(session):
    for shot, codes in session.step("sync")["codes"].items():
        _check_codes(codes, shot)


def test_duplicate_and_split_make_shots_of_their_own(session):
    edited = session.step("duplicate_split")
    assert edited["duplicate"] == ["FINISHED"] and edited["split"] == ["FINISHED"]
    before = edited["edited"]
    assert before["copy"]["id"] == before["first"]["id"], "Shift+D should copy the shot's properties"
    after = edited["resolved"]  # right after Generate Selected Shots resolved the copies
    copy, right, first, second = after["copy"], after["right_half"], after["first"], after["second"]
    for what, made, original in (("duplicate", copy, first), ("split's right half", right, second)):
        assert made["id"] and made["id"] != original["id"], f"the {what} shares the shot id of {original['name']}"
        assert made["takes"] == [] and made["active_take"] == -1, f"the {what} carries takes: {made['takes']}"
        assert made["prompt"] == original["prompt"], f"the {what} lost the prompt"
    assert len(first["takes"]) == 1 and len(second["takes"]) == 1, "an original lost its takes"
    assert second["span"] == [before["second"]["span"][0], edited["cut"]], second["span"]
    assert second["take_strip"]["span"] == second["span"], (
        f"the split shot's take strip shows past it: {second['take_strip']['span']} for {second['span']}")
    assert first["take_strip"] == before["first"]["take_strip"], "the duplicated shot's take strip changed"

    shots = edited["shots"]  # the copies generated
    for name in (copy["name"], right["name"], first["name"], second["name"]):
        _check_placed(shots[name])
    assert len(shots[copy["name"]]["takes"]) == 1 and len(shots[right["name"]]["takes"]) == 1
    own = {shots[n]["take_strip"]["path"] for n in (copy["name"], right["name"], first["name"], second["name"])}
    assert len(own) == 4, f"copies and originals share take files: {own}"
    assert shots[first["name"]]["takes"] == before["first"]["takes"], "the original's takes changed"
    timeline = edited["timeline"]
    assert len(timeline["take"]) == len(shots) and not timeline["movie_plain"] and not timeline["loop"], timeline
    for name, codes in edited["codes"].items():
        _check_codes(codes, name)


def test_snap_shots_brings_the_take_along(session):
    snap = session.step("snap")
    bars = session.step("analyze")["bar_frames"]
    dragged, snapped = snap["dragged"], snap["snapped"]
    assert dragged["span"] == [snap["before"][0] + 3, snap["before"][1] - 40]
    assert snap["result"] == ["FINISHED"]
    assert snapped["span"][0] in bars and snapped["span"][1] in bars, f"snapped to {snapped['span']}, bars {bars}"
    assert snapped["span"] == [bars[0], bars[1]], snapped["span"]
    _check_placed(snapped)
    _check_codes(snap["codes"], f"{snapped['name']} after Snap Shots")


def test_a_second_take_and_choosing_takes(session):
    takes = session.step("takes")
    assert takes["result"] == ["FINISHED"]
    second = takes["after_generate"]
    _check_placed(second)
    assert len(second["takes"]) == 2 and second["active_take"] == 1, (second["active_take"], second["takes"])
    paths = [t["path"] for t in second["takes"]]
    assert paths[0] != paths[1], "the second take overwrote the first"
    row = takes["after_row"]  # clicking the first row
    _check_placed(row)
    assert row["active_take"] == 0 and row["take_strip"]["path"] == paths[0], row["take_strip"]
    _check_codes(takes["row_codes"], f"{TEXT_SHOT} showing take 1")
    assert takes["use_take"] == ["FINISHED"]
    used = takes["after_use_take"]
    _check_placed(used)
    assert used["active_take"] == 1 and used["take_strip"]["path"] == paths[1], used["take_strip"]


def test_saving_moves_the_takes_next_to_the_blend(session, world):
    saved = session.step("save")
    assert saved["result"] == ["FINISHED"]
    folder = os.path.realpath(world["work"] / "shotline")
    for shot in saved["after"].values():
        _check_placed(shot, under=folder)
        for record in shot["takes"] + [shot["take_strip"]]:
            assert record["path"].startswith("//shotline/"), f"{shot['name']}: stored as {record['path']}"
    assert not saved["unsaved_exists"], "the temporary take folder is still there after the first save"
    assert _essentials(saved["after"], paths=False) == _essentials(saved["before"], paths=False), (
        "saving changed shots or takes")


def test_reopening_keeps_shots_takes_and_paths(session, world):
    saved, reopened = session.step("save"), session.step("reopen")
    assert reopened["result"] == ["FINISHED"]
    assert os.path.realpath(reopened["blend"]) == os.path.realpath(world["work"] / "film.blend")
    assert _essentials(reopened["shots"]) == _essentials(saved["after"])
    assert reopened["timeline"] == saved["timeline"]
    for shot in reopened["shots"].values():
        _check_placed(shot, under=os.path.realpath(world["work"] / "shotline"))
    assert reopened["analysis"] and reopened["song"] == "Song"
    _check_codes(reopened["codes"], f"{TEXT_SHOT} after reopening")


def test_iterating_continuity_variations_lock_trash_and_compare(session, world):
    it = session.step("iterate")
    assert it["generate"] == it["variations"] == ["FINISHED"]
    second = it["after_variations"]
    assert len(second["takes"]) == 2 and len({t["seed"] for t in second["takes"]}) == 2, second["takes"]
    assert second["status"] == 'PLACED', second["message"]
    # the second shot opens on the first shot's last frame (H.264 apart), not on anything else
    assert it["continuity"] < 8 < it["unrelated"], (it["continuity"], it["unrelated"])
    assert "locked on take 2, skipped" in it["locked"]
    assert it["delete"] == ["FINISHED"] and len(it["trashed"]) == 1 and it["trashed"][0]["exists"]
    assert "/_trash/" in it["trashed"][0]["abs"]
    assert it["compare"] == it["end_compare"] == ["FINISHED"] and it["compare_strips"] >= 3
    assert it["compare_left"] == 0
    assert it["empty_trash"] == ["FINISHED"] and it["trash_after"] == [False]
    assert it["save"] == ["FINISHED"]
    kept = it["second"]
    assert len(kept["takes"]) == 1 and kept["takes"][0]["exists"] and kept["take_strip"]["path"].startswith("//")


# -- closing mid-job and starting again -----------------------------------------------------------------------------

def test_resume_output_has_no_traceback(resumed):
    resumed.step("resume")
    _no_traceback(resumed)


def test_a_job_cut_off_by_a_crash_is_resumed_when_the_file_opens(session, resumed, world):
    crash = session.step("crash_mid_job")
    assert crash["add_shot"] == ["FINISHED"] and crash["generate"] == ["FINISHED"] and crash["save"] == ["FINISHED"]
    long_shot = crash["long"]
    assert long_shot["status"] == 'GENERATING' and 0 < crash["progress"] < 1, (long_shot["status"], crash["progress"])
    records = crash["records"]
    assert [r["id"] for r in records] == [long_shot["job"]], f"the file was saved with the jobs {records}"

    start = resumed.step("start")  # Blender starting again: the user's preferences, the extension enabled
    assert start["enabled"] == [MODULE] and start["package_in_user_folder"] and not start["checkout_importable"]
    resume = resumed.step("resume")
    assert resume["result"] == ["FINISHED"]
    assert resume["busy_on_open"], "the saved job was not resumed when the file opened"
    assert [j["id"] for j in resume["jobs_on_open"]] == [long_shot["job"]], resume["jobs_on_open"]
    shot = resume["shots"][resume["opened"]["name"]]
    _check_placed(shot, under=os.path.realpath(world["work"] / "shotline"))
    assert len(shot["takes"]) == 1 and shot["takes"][0]["frames"] == LONG_FRAMES, shot["takes"]
    assert shot["takes"][0]["prompt"] == LONG_PROMPT
    assert shot["take_strip"]["path"].startswith("//shotline/"), shot["take_strip"]["path"]
    _check_codes(resume["codes"], "the resumed take")
    before = _essentials(session.step("reopen")["shots"])
    after = _essentials(resume["shots"])
    assert {name: after.get(name) for name in before} == before, "shots or takes changed across the crash"
    assert resume["save"] == ["FINISHED"] and resume["jobs_after_save"] == "", (
        f"a placed job is still saved as pending: {resume['jobs_after_save']}")


def test_a_job_cut_off_after_the_first_save_is_resumed_next_to_the_blend(unsaved_crash, unsaved_resumed, world):
    """The job was queued while the film was unsaved (its take was promised to the temporary folder),
    the film was saved for the first time while it ran, and Blender crashed."""
    _no_traceback(unsaved_crash)
    crash = unsaved_crash.step("unsaved_mid_job")
    assert crash["generate"] == ["FINISHED"] and crash["save"] == ["FINISHED"]
    assert crash["long"]["status"] == 'GENERATING' and 0 < crash["progress"] < 1
    assert [r["id"] for r in crash["records"]] == [crash["long"]["job"]], crash["records"]

    _no_traceback(unsaved_resumed)
    resume = unsaved_resumed.step("resume")
    assert resume["busy_on_open"], "the saved job was not resumed when the file opened"
    shot = resume["shots"][resume["opened"]["name"]]
    folder = os.path.realpath(world["new_film"] / "shotline")
    _check_placed(shot, under=folder)
    assert shot["take_strip"]["path"].startswith("//shotline/"), shot["take_strip"]["path"]
    assert len(shot["takes"]) == 1 and shot["takes"][0]["frames"] == LONG_FRAMES
    _check_codes(resume["codes"], "the resumed take of the new film")
    assert resume["jobs_after_save"] == "", f"a placed job is still saved as pending: {resume['jobs_after_save']}"

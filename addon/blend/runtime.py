"""The main-thread side of jobs: submit shots, pump the queue, apply events to strips.

Blender's data is touched here only, on the main thread: a `bpy.app.timers` callback
pumps the queue in Blender; tests and the command-line batch call `pump()` directly.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque

import bpy
from bpy.app.handlers import persistent

from .. import encode, jobs, media, timing
from ..services import registry
from ..services.base import ServiceError
from . import compat, identity, mediafolder, placement, shots, song

log = logging.getLogger("shotline")

PUMP_INTERVAL = 0.1
NO_PROMPT = "No prompt yet: write what to generate in the Prompt field (or the Text strip)"
_queue: jobs.JobQueue | None = None
_finished: deque[str] = deque()  # jobs whose takes wait to be placed, oldest first

STATUS_BY_EVENT = {
    "queued": 'QUEUED', "started": 'GENERATING', "progress": 'GENERATING', "downloading": 'DOWNLOADING',
    "failed": 'FAILED', "cancelled": 'CANCELLED',
}


def queue() -> jobs.JobQueue:
    global _queue
    if _queue is None:
        _queue = jobs.JobQueue(registry.get)
    return _queue


def job_key(scene, shot) -> str:
    return f"{scene.name}\x1f{shot.shotline.shot_id}"


def _shot_for(key: str):
    scene_name, _, shot_id = key.partition("\x1f")
    scene = bpy.data.scenes.get(scene_name)
    return (scene, shots.by_id(scene, shot_id)) if scene else (None, None)


def resolve_copies() -> list[str]:
    """Make copied, pasted and split shots shots of their own (see identity.py), and let the song
    picker show a renamed song's new name."""
    notes = identity.resolve(bpy.data.scenes)
    for scene in bpy.data.scenes:
        song.keep_choice(scene)
    return notes


def resolve_copies_soon() -> None:
    """From a panel's draw, which may not change data: resolve on the next timer tick."""
    if not bpy.app.timers.is_registered(_resolve_tick):
        bpy.app.timers.register(_resolve_tick, first_interval=0.0)


def _resolve_tick() -> None:
    for note in resolve_copies():
        log.info("%s", note)
    compat.redraw_sequencers()


def submit(scene, shot_strips) -> tuple[int, list[str]]:
    """Queue one job per shot; returns how many were queued and a reason for each one that was not."""
    resolve_copies()  # a copy still carrying its original's id would take the original's job
    problems = []
    queued = 0
    for shot in shot_strips:
        props = shot.shotline
        if not shots.prompt(shot):  # placeholder text is never sent: with paid services it is money
            props.status, props.status_message = 'NONE', NO_PROMPT
            problems.append(f"{shot.name}: no prompt yet, skipped")
            continue
        try:  # everything that can be known before a request is sent is checked before
            service = registry.get(props.service)
            if service.needs_network and not bpy.app.online_access:
                raise ValueError(f"{service.label} needs online access (Preferences > System > Network)")
            request = shots.build_request(scene, shot, service)
            service.check(request)
            placement.check_room(scene, shot)
            dest = media.next_take_path(mediafolder.root(scene), shot.name,
                                        reserved=[j.dest for j in queue().active()])
            mediafolder.check_writable(mediafolder.root(scene))
        except (ValueError, KeyError, OSError, ServiceError, placement.PlacementError) as err:
            props.status, props.status_message = 'FAILED', str(err).strip("'\"")
            problems.append(f"{shot.name}: {props.status_message}")
            continue
        if props.job_id and (old := queue().get(props.job_id)) and not old.is_finished:
            queue().cancel(old.id)
        job = queue().submit(job_key(scene, shot), service.id, request, dest)
        props.job_id, props.status, props.progress, props.status_message = job.id, 'QUEUED', 0.0, ""
        queued += 1
    ensure_timer()
    return queued, problems


def cancel(job_ids=None) -> int:
    """Cancel the given jobs, or all; returns how many were asked to stop."""
    q = queue()
    ids = [j.id for j in q.active()] if job_ids is None else [i for i in job_ids if q.get(i)]
    for job_id in ids:
        q.cancel(job_id)
    return len(ids)


def pump(max_events: int = 64, budget_s: float = 0.004) -> list[jobs.Event]:
    """Apply what workers reported; bounded so the UI never stalls.

    Placing a take opens its video in Blender (several ms of the main thread), so a pump
    places at most one; the others wait for the next pumps, in the order they finished.
    """
    events = queue().pump(max_events=max_events, budget_s=budget_s)
    for event in events:
        try:
            _apply(event)
        except Exception:  # a bad event must not kill the timer
            log.exception("applying %s for job %s", event.kind, event.job_id)
    placed = bool(_finished)
    if placed:
        job_id = _finished.popleft()
        try:
            _place(job_id)
        except Exception:
            log.exception("placing the take of job %s", job_id)
    if events or placed:
        compat.redraw_sequencers()
    return events


def _apply(event: jobs.Event) -> None:
    scene, shot = _current_shot(event.job_id)
    if shot is None:
        return
    props = shot.shotline
    if event.kind == "done":
        props.status, props.status_message = 'DOWNLOADING', "placing the take"
        _finished.append(event.job_id)
        return
    props.status = STATUS_BY_EVENT[event.kind]
    if event.progress is not None:
        props.progress = event.progress
    props.status_message = event.message


def _current_shot(job_id: str):
    """(scene, shot) of a job, or (None, None) once the shot is gone or has a newer job."""
    job = queue().get(job_id)
    scene, shot = _shot_for(job.key) if job else (None, None)
    if shot is None or shot.shotline.job_id != job_id:
        return None, None  # the take's file stays on disk; nothing else to do
    return scene, shot


def _place(job_id: str) -> None:
    scene, shot = _current_shot(job_id)
    if shot is not None:
        _add_take(scene, shot, queue().get(job_id))


def _add_take(scene, shot, job: jobs.Job) -> None:
    props = shot.shotline
    reserved = [j.dest for j in queue().active()]
    path = mediafolder.blend_path(mediafolder.settle(job.result.path, scene, shot.name, reserved))
    try:
        placed = placement.place_take(scene, shot, path, job.result.fps)
    except (placement.PlacementError, RuntimeError) as err:  # RuntimeError: Blender refused an operation
        props.status, props.status_message = 'FAILED', f"{err} (kept at {path})"
        return
    take = props.takes.add()
    take.filepath = path
    take.service, take.seed, take.prompt = job.service_id, job.request.seed, job.request.prompt
    take.fps = float(job.request.fps if job.result.fps is None else job.result.fps)
    take.frames = job.result.frames or 0
    take.created = time.strftime("%Y-%m-%d %H:%M")
    props.active_take = len(props.takes) - 1
    props.progress = 1.0
    if placed.plan.short_by:
        props.status = 'SHORT'
        props.status_message = f"Take is {placed.plan.short_by} frames shorter than the shot"
    else:
        props.status = 'PLACED'
        props.status_message = placed.channel_note
    _undo_step(f"Shotline: take {len(props.takes)} of {shot.name}")


def _undo_step(message: str) -> None:
    """Make a placement its own undo step (it happens in a timer, outside any operator)."""
    if not bpy.app.background:
        bpy.ops.ed.undo_push(message=message)


def use_take(scene, shot, index: int) -> placement.Placed:
    """Show another of the shot's takes in its take strip."""
    take = shot.shotline.takes[index]
    placed = placement.place_take(scene, shot, take.filepath, timing.rate(take.fps) if take.fps > 0 else None)
    shot.shotline.active_take = index
    return placed


def run_until_idle(timeout: float, interval: float = PUMP_INTERVAL, on_pump=None) -> None:
    """Pump until every job is finished and placed, as the timer does in Blender: for the
    command-line batch, the demo and tests, where timers never fire."""
    deadline = time.monotonic() + timeout
    while busy():
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still running after {timeout:.0f} s")
        started = time.perf_counter()
        pump()
        if on_pump:
            on_pump(time.perf_counter() - started)
        time.sleep(interval)
    pump()


def busy() -> bool:
    """Jobs running, or takes still to place."""
    return queue().busy or bool(_finished)


def _tick() -> float | None:
    pump()
    return PUMP_INTERVAL if busy() else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=PUMP_INTERVAL, persistent=True)


@persistent
def _save_pre(filepath, *_args) -> None:
    """Keep unfinished jobs with the file and move unsaved takes next to it."""
    resolve_copies()
    problem = mediafolder.adopt_unsaved(filepath)
    if problem:
        notify(problem)
    for scene in bpy.data.scenes:
        if not hasattr(scene, "shotline"):
            continue
        records = [j.to_record() for j in queue().active() if j.key.startswith(f"{scene.name}\x1f")]
        scene.shotline.jobs = json.dumps(records) if records else ""


@persistent
def _save_post(*_args) -> None:
    mediafolder.first_save_done(saved=True)


@persistent
def _save_post_fail(*_args) -> None:
    """Blender could not write the file (a read-only folder, a full disk): undo the first save's moves."""
    try:
        mediafolder.first_save_done(saved=False)
    except OSError as err:
        notify(f"Some takes could not be moved back to the temporary folder: {err}")


def notify(message: str) -> None:
    """Tell the director something that happened outside an operator (no report to write to)."""
    log.warning("%s", message)
    if bpy.app.background:
        return

    def show() -> None:
        def draw(menu, _context):
            menu.layout.label(text=message)
        wm = bpy.context.window_manager
        if wm.windows:
            with bpy.context.temp_override(window=wm.windows[0]):
                wm.popup_menu(draw, title="Shotline", icon='ERROR')

    bpy.app.timers.register(show, first_interval=0.0)


@persistent
def _load_post(*_args) -> None:
    """Resume the jobs a file was saved with (they outlive the session)."""
    for note in resolve_copies():
        log.info("%s", note)
    for scene in bpy.data.scenes:
        raw = scene.shotline.jobs if hasattr(scene, "shotline") else ""
        if not raw:
            continue
        for record in json.loads(raw):
            try:
                queue().resume(record)
            except (KeyError, ValueError) as err:
                log.warning("cannot resume a saved job: %s", err)
    if busy():
        ensure_timer()


_HANDLERS = (("save_pre", _save_pre), ("save_post", _save_post), ("save_post_fail", _save_post_fail),
             ("load_post", _load_post))


def register():
    encode.remove_stale_scratch()
    for name, fn in _HANDLERS:
        getattr(bpy.app.handlers, name).append(fn)


def unregister():
    global _queue
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn in handlers:
            handlers.remove(fn)
    _finished.clear()
    if _queue is not None:
        _queue.shutdown(wait=True, timeout=10)
        _queue = None

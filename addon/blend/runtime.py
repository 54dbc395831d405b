"""The main-thread side of jobs: submit shots, pump the queue, apply events to strips.

Blender's data is touched here only, on the main thread: a `bpy.app.timers` callback
pumps the queue in Blender; tests and the command-line batch call `pump()` directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import bpy
from bpy.app.handlers import persistent

from .. import encode, jobs, journal, media
from ..services import registry
from ..services.base import ServiceError
from . import cast, compat, farm, identity, mediafolder, placement, prefs, shots, song, sources, takes

log = logging.getLogger("shotline")

PUMP_INTERVAL = 0.1
SAME_REQUEST = "Same request as take"  # the status of a shot shown its earlier take instead of paying again
NO_PROMPT = "No prompt yet: write what to generate in the Prompt field (or the Text strip)"
_queue: jobs.JobQueue | None = None
_finished: deque[str] = deque()  # jobs whose takes wait to be placed, oldest first
_adopted: set[str] = set()  # jobs adopted from a journal: placed on their shot whatever its latest job
_made_with: dict[str, str] = {}  # job id -> the shot's settings when it was sent (JSON, kept on its take)

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
    """Make copied, pasted and split shots shots of their own (see identity.py), let the song
    picker show a renamed song's new name, and carry renamed cast members into the shots."""
    notes = identity.resolve(bpy.data.scenes)
    for scene in bpy.data.scenes:
        song.keep_choice(scene)
        if hasattr(scene, "shotline"):
            notes += cast.follow_renames(scene)
    return notes


def resolve_copies_soon() -> None:
    """From a panel's draw, which may not change data: resolve on the next timer tick."""
    if not bpy.app.timers.is_registered(_resolve_tick):
        bpy.app.timers.register(_resolve_tick, first_interval=0.0)


def _resolve_tick() -> None:
    for note in resolve_copies():
        log.info("%s", note)
    compat.redraw_sequencers()


@dataclass
class Planned:
    """One shot ready to send: its request, what it is expected to cost, a take it would repeat."""

    shot: object
    service: object
    request: object
    estimate: float | None
    same_as: int = -1  # index of a take of the shot made from this very request (-1: none)
    inputs: sources.Inputs | None = None  # files the request needs made first (a song slice, a video segment)


@dataclass
class Plan:
    ready: list[Planned] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def cost(self) -> float:
        """USD the paid requests are expected to cost (unknown prices count as 0)."""
        return sum(p.estimate or 0.0 for p in self.ready if p.same_as < 0)

    @property
    def unknown_prices(self) -> int:
        return sum(1 for p in self.ready if p.same_as < 0 and p.estimate is None)


def plan(scene, shot_strips, force: bool = False, variations: int = 1, seed_mode: str = 'SHOT') -> Plan:
    """Check every shot before anything is sent and build its requests: one, or `variations` with
    different seeds. `seed_mode`: 'SHOT' as the shot says (its fixed seed or a random one), 'NEW' a
    new random seed, 'SAME' the seed of the shot's active take (Regenerate). A shot that cannot go
    gets its reason in its status and in `problems`; a locked shot is skipped."""
    resolve_copies()  # a copy still carrying its original's id would take the original's job
    prefs.push()
    result = Plan()
    for shot in shot_strips:
        props = shot.shotline
        if props.locked:  # its take is final: no batch, no accident sends it again
            result.problems.append(f"{shot.name}: locked on take {props.active_take + 1}, skipped "
                                   "(unlock it to generate again)")
            continue
        if not shots.prompt(shot):  # placeholder text is never sent: with paid services it is money
            props.status, props.status_message = 'NONE', NO_PROMPT
            result.problems.append(f"{shot.name}: no prompt yet, skipped")
            continue
        try:  # everything that can be known before a request is sent is checked before
            takes.check_limit(shot, len(running_jobs(shot)), variations)
            service = registry.get(props.service)
            if service.needs_network and not bpy.app.online_access:
                raise ValueError(f"{service.label} needs online access: nothing was sent "
                                 "(allow it in Preferences > System > Network)")
            placement.check_room(scene, shot)
            mediafolder.check_writable(mediafolder.root(scene))
            inputs = sources.gather(scene, shot, service)
            for seed in _seeds(shot, variations, seed_mode):
                request = shots.build_request(scene, shot, service, inputs, seed)
                service.check(dataclasses.replace(request, **inputs.stand_ins))
                reusable = not (force or variations > 1 or seed_mode != 'SHOT' or inputs.to_make) \
                    and service.needs_network
                same_as = _take_of(shot, service.id, request) if reusable else -1
                result.ready.append(Planned(shot, service, request, service.estimate_cost(request), same_as, inputs))
            note = cast.left_out(scene, shot, service)
            if note:
                result.problems.append(f"{shot.name}: {note}")
        except (ValueError, KeyError, OSError, ServiceError, placement.PlacementError) as err:
            result.ready = [p for p in result.ready if p.shot != shot]
            props.status, props.status_message = 'FAILED', str(err).strip("'\"")
            result.problems.append(f"{shot.name}: {props.status_message}")
    return result


def _seeds(shot, variations: int, seed_mode: str) -> list[int | None]:
    """The seed of each request: None lets the shot choose (its fixed seed, or a random one)."""
    props = shot.shotline
    if variations > 1 or seed_mode == 'NEW':
        seeds: set[int] = set()
        while len(seeds) < variations:
            seeds.add(random.randrange(2**31))
        return sorted(seeds)
    if seed_mode == 'SAME':
        active = props.takes[props.active_take] if 0 <= props.active_take < len(props.takes) else None
        return [active.seed if active else props.seed]
    return [None]


def _take_of(shot, service_id: str, request) -> int:
    """The shot's take made from exactly this request, if its file is still there (-1: none)."""
    key = jobs.request_key(service_id, request)
    for index, take in enumerate(shot.shotline.takes):
        if take.request_key == key and os.path.isfile(bpy.path.abspath(take.filepath)):
            return index
    return -1


def over_budget(scene, cost: float) -> str:
    """Why sending `cost` more would pass the project's budget ("" when it would not)."""
    budget = scene.shotline.budget
    if budget <= 0 or cost <= 0:
        return ""
    running = sum(j.estimate or 0.0 for j in queue().active() if j.key.startswith(f"{scene.name}\x1f"))
    committed = scene.shotline.spent + running
    if committed + cost <= budget + 1e-9:
        return ""
    return (f"Over budget: ${committed:.2f} of ${budget:.2f} spent or running; this batch (~${cost:.2f}) "
            f"would pass it. Raise the budget in the Project panel.")


class Submitted(NamedTuple):
    queued: int
    problems: list[str]  # a reason for each shot that could not go
    reused: list[str]  # a note for each shot whose identical request made one of its takes before


def _note_workflow(scene, planned: Plan) -> str:
    """Keep the project workflow's content hash with the file; say when the file changed since."""
    path = scene.shotline.workflow and bpy.path.abspath(scene.shotline.workflow)
    if not path or not any(p.service.uses_workflow for p in planned.ready) or not os.path.isfile(path):
        return ""
    key, before = media.content_key(Path(path)), scene.shotline.workflow_key
    scene.shotline.workflow_key = key
    if before and before != key:
        return f"The workflow {os.path.basename(path)} changed since the last takes were made with it"
    return ""


def submit(scene, shot_strips, force: bool = False, variations: int = 1, seed_mode: str = 'SHOT') -> Submitted:
    """Queue the shots' jobs (see `plan`). A shot whose request made one of its takes before shows that
    take again instead of paying twice (unless `force`). Jobs add to a shot's running ones."""
    planned = plan(scene, shot_strips, force, variations, seed_mode)
    problems = list(planned.problems)
    reused = []
    note = _note_workflow(scene, planned)
    if note:
        problems.append(note)
    refusal = over_budget(scene, planned.cost)
    queued = 0
    for item in planned.ready:
        shot, service, request = item.shot, item.service, item.request
        props = shot.shotline
        if item.same_as >= 0:
            takes.use_take(scene, shot, item.same_as)
            props.status, props.status_message = 'PLACED', f"{SAME_REQUEST} {item.same_as + 1}: shown again"
            reused.append(f"{shot.name}: the same request made take {item.same_as + 1}; shown again "
                          "(Generate with Force to pay for a new one)")
            continue
        if refusal and (item.estimate or 0) > 0:
            props.status, props.status_message = 'FAILED', refusal
            problems.append(f"{shot.name}: {refusal}")
            continue
        if item.inputs.exporting:  # frames are rendered on the main thread first, a few per pump
            waiting = next((e for e in _exporting if e.inputs is item.inputs), None)
            if waiting is None:
                _exporting.append(_Export(job_key(scene, shot), item.inputs, [item]))
            else:  # another variation of the shot: the same frames
                waiting.items.append(item)
            props.status, props.progress, props.status_message = 'QUEUED', 0.0, "Preparing the source video"
        else:
            _queue_job(scene, shot, item)
        queued += 1
    ensure_timer()
    return Submitted(queued, problems, reused)


@dataclass
class _Export:
    """Jobs (a shot's variations) waiting for their source video's frames to be rendered from the timeline."""

    key: str
    inputs: sources.Inputs
    items: list[Planned]


_exporting: deque[_Export] = deque()


def _queue_job(scene, shot, item: Planned) -> jobs.Job:
    props = shot.shotline
    dest = media.next_take_path(mediafolder.root(scene), shot.name, reserved=[j.dest for j in queue().active()])
    job = queue().submit(job_key(scene, shot), item.service.id, item.request, dest,
                         str(mediafolder.journal_file(scene)), item.estimate, item.inputs.prepare)
    _made_with[job.id] = takes.settings_of(shot, item.request.seed)
    props.job_id = " ".join([*running_jobs(shot), job.id])
    props.status, props.progress, props.status_message = 'QUEUED', 0.0, ""
    return job


def _step_exports(budget_s: float) -> None:
    """Render the next frames of the oldest export; queue its job once all are rendered."""
    if not _exporting:
        return
    export = _exporting[0]
    scene, shot = _shot_for(export.key)
    if shot is None:
        _exporting.popleft().inputs.cancel()
        return
    try:
        done = export.inputs.exporting.step(budget_s)
    except (OSError, ValueError, RuntimeError) as err:
        _exporting.popleft().inputs.cancel()
        shot.shotline.status, shot.shotline.status_message = 'FAILED', f"Cannot export the source video: {err}"
        return
    shot.shotline.progress = export.inputs.exporting.progress
    shot.shotline.status_message = f"Preparing the source video {shot.shotline.progress:.0%}"
    if done:
        _exporting.popleft()
        for item in export.items:
            _queue_job(scene, shot, item)


def running_jobs(shot) -> list[str]:
    """The shot's jobs still queued, running, or finished with their take still to place."""
    return [i for i in shot.shotline.job_id.split()
            if (j := queue().get(i)) is not None and (not j.is_finished or i in _finished)]


def cancel(job_ids=None) -> int:
    """Cancel the given jobs, or all; returns how many were asked to stop."""
    if job_ids is None:
        _cancel_exports(list(_exporting))
    q = queue()
    ids = [j.id for j in q.active()] if job_ids is None else [i for i in job_ids if q.get(i)]
    for job_id in ids:
        q.cancel(job_id)
    return len(ids)


def cancel_shot(scene, shot) -> int:
    """Cancel everything the shot has going: its jobs and a source video being exported."""
    key = job_key(scene, shot)
    return _cancel_exports([e for e in _exporting if e.key == key]) + cancel(running_jobs(shot))


def _cancel_exports(exports: list[_Export]) -> int:
    """Stop source videos being exported (their jobs were never queued); their shots say so."""
    for export in exports:
        export.inputs.cancel()
        _exporting.remove(export)
        _scene, shot = _shot_for(export.key)
        if shot is not None:
            shot.shotline.status, shot.shotline.status_message = 'CANCELLED', "Cancelled"
    return len(exports)


def pump(max_events: int = 64, budget_s: float = 0.004) -> list[jobs.Event]:
    """Apply what workers reported; bounded so the UI never stalls.

    Placing a take opens its video in Blender (several ms of the main thread), so a pump
    places at most one; the others wait for the next pumps, in the order they finished.
    """
    _step_exports(0.03)
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
        _end(job_id)
    if events or placed:
        compat.redraw_sequencers()
    return events


def _end(job_id: str) -> None:
    """The journal forgets a job once its take is placed, or it failed or was cancelled."""
    job = queue().get(job_id)
    if job is not None and job.journal and job.remote_id:
        journal.ended(Path(job.journal), job.id, job.state)
    _adopted.discard(job_id)
    _made_with.pop(job_id, None)


def _apply(event: jobs.Event) -> None:
    if event.kind in ("failed", "cancelled"):
        _end(event.job_id)
    scene, shot = _current_shot(event.job_id)
    if shot is None:
        if event.kind == "done":
            _end(event.job_id)  # no shot to place it on: the file stays in the media folder
        return
    props = shot.shotline
    if event.kind == "done":
        props.status, props.status_message = 'DOWNLOADING', "placing the take"
        _finished.append(event.job_id)
        return
    others = [i for i in running_jobs(shot) if i != event.job_id]
    if event.kind in ("failed", "cancelled") and others:  # the shot's other takes are still coming
        props.status_message = f"One take {event.kind}: {event.message}; {len(others)} still generating"
        return
    props.status = STATUS_BY_EVENT[event.kind]
    if event.progress is not None:
        props.progress = event.progress
    props.status_message = event.message


def has_running_job(shot) -> bool:
    return bool(running_jobs(shot))


def shot_of_job(job_id: str):
    """(scene, shot) the job was made for, whatever job the shot has now; (None, None) once gone."""
    job = queue().get(job_id)
    return _shot_for(job.key) if job else (None, None)


def _current_shot(job_id: str):
    """(scene, shot) of a job, or (None, None) once the shot is gone or has a newer job."""
    job = queue().get(job_id)
    scene, shot = _shot_for(job.key) if job else (None, None)
    if shot is None or (job_id not in shot.shotline.job_id.split() and job_id not in _adopted):
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
    request = job.request
    take.service, take.seed, take.prompt = job.service_id, request.seed, request.prompt
    take.negative_prompt, take.model = request.negative_prompt, request.model
    take.fps = float(request.fps if job.result.fps is None else job.result.fps)
    take.frames = job.result.frames or 0
    take.duration = take.frames / take.fps if take.frames and take.fps else float(request.duration)
    take.references = "\n".join(mediafolder.blend_path(f) for f in _inputs_sent(request))
    take.settings = _made_with.get(job.id, "")
    take.cost_estimated = job.result.cost is None
    take.cost = (job.estimate or 0.0) if job.result.cost is None else job.result.cost
    scene.shotline.spent += take.cost
    try:
        take.request_key = jobs.request_key(job.service_id, request)
    except OSError:  # an input file gone since: the take simply cannot be matched again
        take.request_key = ""
    size = os.path.getsize(bpy.path.abspath(path))
    take.content_key = job.result.content_key  # for Relink, should the file move
    take.size = size if size < 2**31 else 0
    take.created = time.strftime("%Y-%m-%d %H:%M")
    props.active_take = len(props.takes) - 1
    props.progress = 1.0
    still = [i for i in running_jobs(shot) if i != job.id]
    if still:
        props.status, props.status_message = 'GENERATING', f"Take {len(props.takes)} placed; {len(still)} more coming"
    elif placed.plan.short_by:
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


def _inputs_sent(request) -> list[str]:
    return [f for f in (request.reference_image, request.last_frame_image, *request.reference_images,
                        request.source_video, request.audio) if f]


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
    """Jobs running, source videos being exported, or takes still to place."""
    return queue().busy or bool(_finished) or bool(_exporting)


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
    farm.forget()
    resume_file_jobs()


def resume_file_jobs() -> None:
    """Resume the jobs the open file was saved with (they outlive the session) and adopt the ones its
    journals hold. Run on load; the batch runs it itself when it enabled the add-on after opening."""
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
    adopt_journalled()
    for scene in bpy.data.scenes:
        for shot in shots.shots(scene) if hasattr(scene, "shotline") else ():
            props = shot.shotline
            if props.status in {'QUEUED', 'GENERATING', 'DOWNLOADING'} and not running_jobs(shot):
                # saved while its inputs were still being made: nothing was sent
                props.status, props.status_message = 'CANCELLED', "Interrupted before it was sent: Generate again"
    if busy():
        ensure_timer()


def adopt_journalled() -> int:
    """Adopt the jobs the journals hold for this file's shots that the file does not know of (it
    was saved before they were submitted, or Blender was killed): they are polled, fetched and
    placed, never submitted again. Returns how many were adopted."""
    own = {mediafolder.journal_file(scene) for scene in bpy.data.scenes if hasattr(scene, "shotline")}
    shared = mediafolder.user_folder() / journal.FILE_NAME  # unsaved files' jobs, of any Blender running
    for path in own - {shared}:
        journal.compact(path)  # ended jobs go: the file stays small over months of work
    adopted = 0
    for path in sorted(own | {shared}):
        for record in journal.pending(path):
            scene_name, _, shot_id = str(record.get("key", "")).partition("\x1f")
            scene = bpy.data.scenes.get(scene_name)
            shot = shots.by_id(scene, shot_id) if scene and hasattr(scene, "shotline") else None
            if shot is None or queue().get(record["id"]) is not None:
                continue  # another project's job, or one the file already resumed
            try:
                job = queue().resume(record)
            except (KeyError, ValueError) as err:
                log.warning("cannot adopt a journalled job: %s", err)
                continue
            _adopted.add(job.id)
            shot.shotline.job_id = " ".join([*running_jobs(shot), job.id])
            shot.shotline.status, shot.shotline.status_message = 'GENERATING', "Adopted from the job journal"
            adopted += 1
    return adopted


@persistent
def _after_undo(*_args) -> None:
    """Undo and redo move take records, not files: follow them (a deleted take's file leaves the trash)."""
    for scene in bpy.data.scenes:
        if not hasattr(scene, "shotline"):
            continue
        try:
            takes.heal_after_undo(scene)
        except OSError as err:
            notify(f"A take's file could not follow the undo: {err}")


_HANDLERS = (("save_pre", _save_pre), ("save_post", _save_post), ("save_post_fail", _save_post_fail),
             ("load_post", _load_post), ("undo_post", _after_undo), ("redo_post", _after_undo))


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
    _adopted.clear()
    _made_with.clear()
    for export in _exporting:
        export.inputs.cancel()
    _exporting.clear()
    if _queue is not None:
        _queue.shutdown(wait=True, timeout=10)
        _queue = None

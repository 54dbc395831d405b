"""Test Connection: each service's cheapest authenticated call, off the main thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import bpy

from ..services import registry
from ..services.base import ServiceError
from . import prefs

_MAX_TEXT = 200


@dataclass(frozen=True)
class Answer:
    ok: bool
    text: str
    done: bool = True


_answers: dict[str, Answer] = {}
_threads: dict[str, threading.Thread] = {}


def answer(service_id: str) -> Answer | None:
    return _answers.get(service_id)


def start(service_id: str) -> Answer:
    """Begin testing `service_id`; the answer shows in the preferences when it comes."""
    service = registry.get(service_id)
    if service.needs_network and not bpy.app.online_access:
        _answers[service_id] = Answer(False, "Online access is off: allow it in Preferences > System > Network")
        return _answers[service_id]
    if service_id in _threads and _threads[service_id].is_alive():
        return _answers[service_id]
    prefs.push()
    _answers[service_id] = Answer(True, f"Testing {service.label}…", done=False)

    def work() -> None:
        try:
            result = Answer(True, service.test_connection())
        except ServiceError as err:
            result = Answer(False, str(err))
        except Exception as err:  # a bug must not leave "Testing…" forever
            result = Answer(False, f"{type(err).__name__}: {err}")
        _answers[service_id] = Answer(result.ok, " ".join(result.text.split())[:_MAX_TEXT])

    thread = threading.Thread(target=work, name=f"shotline-test-{service_id}", daemon=True)
    _threads[service_id] = thread
    thread.start()
    if not bpy.app.timers.is_registered(_redraw_when_done):
        bpy.app.timers.register(_redraw_when_done, first_interval=0.2)
    return _answers[service_id]


def wait(timeout: float) -> None:
    """For the batch and tests: wait for every test running."""
    for thread in list(_threads.values()):
        thread.join(timeout)


def _redraw_when_done() -> float | None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'PREFERENCES':
                area.tag_redraw()
    return 0.2 if any(t.is_alive() for t in _threads.values()) else None


def stop() -> None:
    """On unregister: no thread left running when Blender quits."""
    wait(5.0)
    _threads.clear()
    _answers.clear()
    if bpy.app.timers.is_registered(_redraw_when_done):
        bpy.app.timers.unregister(_redraw_when_done)

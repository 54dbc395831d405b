"""Send the open file's shots to a Flamenco farm (addon/flamenco.py), off the main thread."""

from __future__ import annotations

import threading
from pathlib import Path

import bpy

from .. import flamenco
from . import compat, shots

BATCH_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "batch.py"  # shipped with the extension

_answer: list[str] = []  # the last submission's answer, for the Project panel
_thread: threading.Thread | None = None


def answer() -> str:
    return _answer[-1] if _answer else ""


def forget() -> None:
    """Another file is open: the last submission's answer was about the one before."""
    _answer.clear()


def job_for(scene, manager_url: str, batch_script: str, selected_only: bool = False) -> dict:
    """The farm job for the saved file's shots (the selected ones, or all). Raises ValueError."""
    if not manager_url:
        raise ValueError("Set the Flamenco Manager's address in Preferences > Add-ons > Shotline")
    if not bpy.data.filepath:
        raise ValueError("Save the file first: the farm works on the saved .blend")
    if bpy.data.is_dirty:
        raise ValueError("Save the file first: the farm would not see the changes since the last save")
    chosen = [s for s in shots.shots(scene) if s.select] if selected_only else shots.shots(scene)
    return flamenco.build_job(bpy.data.filepath, [s.name for s in chosen], batch_script or str(BATCH_SCRIPT),
                              online=bpy.app.online_access)


def start_submit(manager_url: str, job: dict) -> None:
    """Submit `job` on a thread; the answer shows in the Project panel."""
    global _thread
    if _thread is not None and _thread.is_alive():
        raise ValueError("A submission to the farm is still under way")
    _answer.append(f"Sending {job['name']} to the farm…")

    def work() -> None:
        try:
            state = flamenco.Manager(manager_url).submit(job)
            _answer.append(f"Flamenco job {state.id[:8]} {state.status}: {state.name}")
        except flamenco.FlamencoError as err:
            _answer.append(str(err))
        bpy.app.timers.register(compat.redraw_sequencers, first_interval=0.0)

    _thread = threading.Thread(target=work, name="shotline-flamenco", daemon=True)
    _thread.start()


def wait(timeout: float) -> None:
    """For tests and quitting: wait for a submission under way."""
    if _thread is not None:
        _thread.join(timeout)

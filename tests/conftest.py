"""Test set-up: the add-on is enabled once in the bpy module, like an installed extension."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]

import shotline_dev  # noqa: E402

shotline_dev.expose_checkout()


def pytest_unconfigure(config):
    # bpy 4.5 may hang or crash at interpreter exit after VSE and render work: leave at once.
    if "bpy" in sys.modules and sys.modules["bpy"].app.version < (5, 0, 0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(getattr(config, "_shotline_exit", 0))


def pytest_sessionfinish(session, exitstatus):
    session.config._shotline_exit = int(exitstatus)


@pytest.fixture(scope="session")
def addon():
    """The enabled add-on package (registered through Blender's own add-on machinery)."""
    yield shotline_dev.enable()
    shotline_dev.disable()


@pytest.fixture
def scene(addon):
    """A fresh scene with a sequence editor, shown by the window (and the sequencer on 5.x)."""
    import bpy

    sc = bpy.data.scenes.new("Shotline Test")
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 320, 180, 100
    sc.sequence_editor_create()
    window = bpy.context.window_manager.windows[0]
    previous = window.scene
    window.scene = sc
    if "sequencer_scene" in bpy.types.WorkSpace.bl_rna.properties:
        window.workspace.sequencer_scene = sc
    yield sc
    try:
        window.scene = previous
        bpy.data.scenes.remove(sc)
    except ReferenceError:
        pass  # the test opened a file: its scenes are gone with the old one
    if bpy.data.filepath:  # the test saved or opened a file: the next one starts unsaved, as Blender does
        bpy.ops.wm.read_homefile(use_empty=True)


@pytest.fixture
def queue():
    """Makes a JobQueue for a service (test-sized retry delay); each one is shut down after the test.
    Goes with drive.run and drive.pump (tests/drive.py)."""
    from drive import TIMEOUT
    from shotline.addon.jobs import JobQueue

    queues = []

    def make(service):
        queues.append(JobQueue({service.id: service}, retry_delay=0.01))
        return queues[-1]

    yield make
    for q in queues:
        assert q.shutdown(wait=True, timeout=TIMEOUT)

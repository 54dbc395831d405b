"""Run the add-on from this checkout in the `bpy` module (tests, demo, benchmarks, batch)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def expose_checkout() -> None:
    """Make the checkout importable as the package `shotline`, whatever its folder is called,
    and send Blender's user folders somewhere disposable. Call before importing bpy."""
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="shotline-user-"))
    parent = Path(tempfile.mkdtemp(prefix="shotline-pkg-"))
    (parent / "shotline").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(parent))


def enable():
    """Enable the add-on through Blender's own add-on machinery; returns the package."""
    import bpy  # noqa: F401  (addon_utils is importable once bpy is)
    import addon_utils

    module = addon_utils.enable("shotline", default_set=True, handle_error=None)
    if module is None:
        raise RuntimeError("the Shotline add-on failed to register")
    return module


def disable() -> None:
    import addon_utils

    addon_utils.disable("shotline", default_set=True)

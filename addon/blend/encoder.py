"""Point the animatic child process at the running Blender binary (the bundled Python has no `bpy` module)."""

import bpy

from .. import encode


def configure_for_blender() -> None:
    """Run animatic_child.py with this Blender, in the background, without the user's settings and add-ons.

    In the bpy module `binary_path` is empty: the default (this Python with its `bpy`) stays.
    """
    binary = bpy.app.binary_path
    if binary:
        encode.configure([binary, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1",
                          "--python", encode.CHILD_SCRIPT, "--"])

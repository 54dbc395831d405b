# SPDX-License-Identifier: GPL-3.0-or-later
"""Shotline: generate AI video takes for shots on the Video Sequencer timeline, in sync with the song."""

from .addon.blend import encoder, prefs, props, runtime
from . import operators, panels

modules = (prefs, props, operators, panels, runtime)


def register():
    for module in modules:
        module.register()
    encoder.configure_for_blender()


def unregister():
    for module in reversed(modules):
        module.unregister()

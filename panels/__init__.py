"""Panels: draw only."""

from . import cast, jobs, shot

modules = (shot, cast, jobs)


def register():
    for module in modules:
        module.register()


def unregister():
    for module in reversed(modules):
        module.unregister()

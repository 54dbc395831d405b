"""Panels: draw only."""

from . import jobs, shot

modules = (shot, jobs)


def register():
    for module in modules:
        module.register()


def unregister():
    for module in reversed(modules):
        module.unregister()

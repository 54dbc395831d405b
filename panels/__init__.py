"""Panels: draw only."""

from . import shot

modules = (shot,)


def register():
    for module in modules:
        module.register()


def unregister():
    for module in reversed(modules):
        module.unregister()

"""Operators: thin, they read the context, call addon/blend/ and report."""

from . import generate, shots, takes

modules = (shots, generate, takes)


def register():
    for module in modules:
        module.register()


def unregister():
    for module in reversed(modules):
        module.unregister()

"""Operators: thin, they read the context, call addon/blend/ and report."""

from . import generate, music, services, shots, takes

modules = (shots, music, generate, takes, services)


def register():
    for module in modules:
        module.register()


def unregister():
    for module in reversed(modules):
        module.unregister()

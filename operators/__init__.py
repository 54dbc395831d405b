"""Operators: thin, they read the context, call addon/blend/ and report."""

from . import cast, compare, files, generate, look, music, services, shots, takes

modules = (shots, music, generate, takes, services, cast, look, compare, files)


def register():
    for module in modules:
        module.register()


def unregister():
    for module in reversed(modules):
        module.unregister()

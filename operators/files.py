"""Take files that moved: checking which are missing, and relinking them."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty

from ..addon.blend import takefiles
from .common import scene_with_editor


def _take(shot, index: int) -> str:
    return f"{shot.name} take {index + 1}"


class SEQUENCER_OT_shotline_check_takes(bpy.types.Operator):
    """Report every take whose file is missing"""

    bl_idname = "sequencer.shotline_check_takes"
    bl_label = "Check Takes"
    bl_options = {'REGISTER'}

    @classmethod
    def poll(cls, context):
        return scene_with_editor(context) is not None

    def execute(self, context):
        lost = takefiles.missing(scene_with_editor(context))
        for shot, index, _take_record, path in lost:
            self.report({'WARNING'}, f"{_take(shot, index)}: {path} is missing")
        if not lost:
            self.report({'INFO'}, "Every take's file is there")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_relink_takes(bpy.types.Operator):
    """Find missing take files by name and by content in a folder, the .blend's folder and its parent,
    and point the takes (and their take strips) at them"""

    bl_idname = "sequencer.shotline_relink_takes"
    bl_label = "Relink Takes"
    bl_options = {'REGISTER', 'UNDO'}

    directory: StringProperty(name="Folder", description="Where to look first", subtype='DIR_PATH')  # type: ignore
    filter_folder: BoolProperty(default=True, options={'HIDDEN', 'SKIP_SAVE'})  # type: ignore

    @classmethod
    def poll(cls, context):
        return scene_with_editor(context) is not None

    def invoke(self, context, event):
        if not self.directory and bpy.data.filepath:
            self.directory = os.path.dirname(bpy.data.filepath) + os.sep
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context):
        scene = scene_with_editor(context)
        roots = takefiles.default_roots()
        if self.directory:
            chosen = Path(bpy.path.abspath(self.directory))
            if not chosen.is_dir():
                self.report({'ERROR'}, f"{chosen} is not a folder")
                return {'CANCELLED'}
            roots.insert(0, chosen)
        if not roots:
            self.report({'ERROR'}, "Choose a folder to search (an unsaved file has no folder of its own)")
            return {'CANCELLED'}
        report = takefiles.relink(scene, roots)
        for shot, index, path in report.found:
            self.report({'INFO'}, f"{_take(shot, index)}: found at {path}")
        for shot, index, path in report.ambiguous:
            self.report({'WARNING'}, f"{_take(shot, index)}: several files could be {os.path.basename(path)} and "
                                     "its content was never recorded: relink it by hand")
        for shot, index, path in report.not_found:
            self.report({'WARNING'}, f"{_take(shot, index)}: {path} not found")
        for note in report.notes:
            self.report({'WARNING'}, f"Search {note}")
        lost = len(report.found) + len(report.ambiguous) + len(report.not_found)
        if not lost:
            self.report({'INFO'}, "No take is missing")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Relinked {len(report.found)} of {lost} missing take(s) "
                              f"({report.searched} files searched)")
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_check_takes, SEQUENCER_OT_shotline_relink_takes)
register, unregister = bpy.utils.register_classes_factory(classes)

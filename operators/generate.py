"""Generate Selected Shots and Cancel: the jobs run on worker threads, Blender stays free."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty

from ..addon.blend import prefs, runtime
from .common import context_shot, scene_with_editor, selected_shots


class SEQUENCER_OT_shotline_generate(bpy.types.Operator):
    """Send the selected shots to their services; each result becomes a take"""

    bl_idname = "sequencer.shotline_generate"
    bl_label = "Generate Selected Shots"
    bl_options = {'REGISTER'}

    force: BoolProperty(name="Force", description="Pay for a new take even when the same request made one before",
                        default=False, options={'SKIP_SAVE'})  # type: ignore
    variations: IntProperty(name="Takes", description="How many takes of each shot, each with its own seed",
                            default=1, min=1, soft_max=8, max=32, options={'SKIP_SAVE'})  # type: ignore
    seed: EnumProperty(name="Seed", items=[
        ('SHOT', "As the Shot Says", "The shot's fixed seed, or a random one"),
        ('NEW', "New Seed", "A new random seed (Regenerate)"),
        ('SAME', "Same Seed", "The seed of the shot's active take (Regenerate)"),
    ], default='SHOT', options={'SKIP_SAVE'})  # type: ignore

    @classmethod
    def poll(cls, context):
        if scene_with_editor(context) is None:
            return False
        if not selected_shots(context):
            cls.poll_message_set("Select one or more shots")
            return False
        return True

    def invoke(self, context, event):
        """Before paying: the batch's estimated cost, confirmed above the threshold set in the preferences."""
        plan = runtime.plan(scene_with_editor(context), selected_shots(context), self.force, self.variations,
                            self.seed)
        if plan.cost > prefs.confirm_above():
            unknown = f" (+{plan.unknown_prices} of unknown price)" if plan.unknown_prices else ""
            return context.window_manager.invoke_confirm(
                self, event, title="Send to Paid Services?", confirm_text="Generate",
                message=f"{len(plan.ready)} take(s), estimated ${plan.cost:.2f}{unknown}.")
        return self.execute(context)

    def execute(self, context):
        scene = scene_with_editor(context)
        for note in runtime.resolve_copies():
            self.report({'INFO'}, note)
        queued, problems, reused = runtime.submit(scene, selected_shots(context), self.force, self.variations,
                                                  self.seed)
        for problem in problems:
            self.report({'WARNING'}, problem)
        for note in reused:
            self.report({'INFO'}, note)
        if not queued and reused:
            return {'FINISHED'}
        if not queued:
            self.report({'ERROR'}, "Nothing was queued" + (f": {problems[0]}" if problems else ""))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Queued {queued} take(s)" if self.variations > 1 else f"Queued {queued} shot(s)")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_cancel(bpy.types.Operator):
    """Stop generating the active shot, or every running job"""

    bl_idname = "sequencer.shotline_cancel"
    bl_label = "Cancel Generation"
    bl_options = {'REGISTER'}

    all: BoolProperty(name="All", description="Cancel every job", default=False)  # type: ignore

    @classmethod
    def poll(cls, context):
        return runtime.busy()

    def execute(self, context):
        if self.all:
            count = runtime.cancel()
        else:
            shot = context_shot(context)
            count = runtime.cancel_shot(scene_with_editor(context), shot) if shot is not None else 0
            if not count:
                self.report({'WARNING'}, "The active strip is not a shot being generated")
                return {'CANCELLED'}
        runtime.pump()
        self.report({'INFO'}, f"Cancelling {count} job(s)")
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_generate, SEQUENCER_OT_shotline_cancel)
register, unregister = bpy.utils.register_classes_factory(classes)

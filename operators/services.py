"""Services and jobs: Test Connection, a shot's model and reference images, one job's cancel and retry."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..addon.blend import connection, farm, prefs, runtime, sources
from ..addon.services import registry
from .common import context_shot, scene_with_editor


class PREFERENCES_OT_shotline_test_connection(bpy.types.Operator):
    """Make the service's cheapest authenticated call and show the answer"""

    bl_idname = "preferences.shotline_test_connection"
    bl_label = "Test Connection"

    service: StringProperty(name="Service")  # type: ignore

    def execute(self, context):
        try:
            answer = connection.start(self.service)
        except KeyError:
            self.report({'ERROR'}, f"Unknown service: {self.service}")
            return {'CANCELLED'}
        self.report({'INFO'} if answer.ok else {'ERROR'}, answer.text)
        return {'FINISHED'}


class SEQUENCER_OT_shotline_set_model(bpy.types.Operator):
    """Generate the active shot with this model"""

    bl_idname = "sequencer.shotline_set_model"
    bl_label = "Set Model"
    bl_options = {'REGISTER', 'UNDO'}

    model: StringProperty(name="Model")  # type: ignore

    @classmethod
    def poll(cls, context):
        return context_shot(context) is not None

    def execute(self, context):
        shot = context_shot(context)
        models = registry.get(shot.shotline.service).models()
        if self.model and self.model not in models:
            self.report({'ERROR'}, f"{shot.shotline.service} has no model \"{self.model}\"")
            return {'CANCELLED'}
        shot.shotline.model = self.model
        return {'FINISHED'}


class SEQUENCER_MT_shotline_models(bpy.types.Menu):
    bl_label = "Model"

    def draw(self, context):
        shot = context_shot(context)
        if shot is None:
            return
        service = registry.get(shot.shotline.service)
        self.layout.operator(SEQUENCER_OT_shotline_set_model.bl_idname, text="Default").model = ""
        for model in service.models():
            self.layout.operator(SEQUENCER_OT_shotline_set_model.bl_idname, text=model).model = model


class SEQUENCER_OT_shotline_add_reference(bpy.types.Operator):
    """Add a still of a character or a place for the service to keep consistent"""

    bl_idname = "sequencer.shotline_add_reference"
    bl_label = "Add Reference Image"
    bl_options = {'REGISTER', 'UNDO'}

    filepath: StringProperty(subtype='FILE_PATH')  # type: ignore

    @classmethod
    def poll(cls, context):
        return context_shot(context) is not None

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context):
        if not self.filepath:
            self.report({'ERROR'}, "Choose an image")
            return {'CANCELLED'}
        path = bpy.path.relpath(self.filepath) if bpy.data.filepath else self.filepath
        context_shot(context).shotline.references.add().filepath = path
        return {'FINISHED'}


class SEQUENCER_OT_shotline_remove_reference(bpy.types.Operator):
    """Remove this reference image from the shot"""

    bl_idname = "sequencer.shotline_remove_reference"
    bl_label = "Remove Reference Image"
    bl_options = {'REGISTER', 'UNDO'}

    index: IntProperty(name="Index")  # type: ignore

    @classmethod
    def poll(cls, context):
        return context_shot(context) is not None

    def execute(self, context):
        references = context_shot(context).shotline.references
        if not 0 <= self.index < len(references):
            return {'CANCELLED'}
        references.remove(self.index)
        return {'FINISHED'}


class SEQUENCER_OT_shotline_frame_at_playhead(bpy.types.Operator):
    """Take the shot's first or last frame from the picture under the playhead (live footage, a still,
    another shot's take)"""

    bl_idname = "sequencer.shotline_frame_at_playhead"
    bl_label = "Frame at Playhead"
    bl_options = {'REGISTER', 'UNDO'}

    end: EnumProperty(name="End", items=[('FIRST', "First Frame", ""), ('LAST', "Last Frame", "")])  # type: ignore

    @classmethod
    def poll(cls, context):
        return context_shot(context) is not None

    def execute(self, context):
        scene, shot = scene_with_editor(context), context_shot(context)
        frame = scene.frame_current
        strip = sources.strip_at(scene, frame, shot)
        if strip is None:
            self.report({'ERROR'}, f"Nothing but this shot is on the timeline at frame {frame}")
            return {'CANCELLED'}
        source = shot.shotline.first_frame if self.end == 'FIRST' else shot.shotline.last_frame
        source.source, source.strip, source.frame = 'STRIP', strip.name, frame
        self.report({'INFO'}, f"{shot.name}: {self.end.lower()} frame from \"{strip.name}\" at frame {frame}")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_cancel_job(bpy.types.Operator):
    """Stop this job (a service that cannot cancel still finishes and bills it)"""

    bl_idname = "sequencer.shotline_cancel_job"
    bl_label = "Cancel Job"

    job_id: StringProperty(name="Job")  # type: ignore

    def execute(self, context):
        job = runtime.queue().get(self.job_id)
        if job is None or job.is_finished:
            self.report({'WARNING'}, "That job is not running")
            return {'CANCELLED'}
        runtime.cancel([job.id])
        runtime.pump()
        service = registry.get(job.service_id)
        if job.remote_id and not service.capabilities_for(job.request.model).can_cancel:
            self.report({'WARNING'}, f"{service.label} cannot stop a started job: it still runs and is billed")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_retry_job(bpy.types.Operator):
    """Send this job's shot again: a new job, paid again on a paid service"""

    bl_idname = "sequencer.shotline_retry_job"
    bl_label = "Retry"

    job_id: StringProperty(name="Job")  # type: ignore

    def execute(self, context):
        scene, shot = runtime.shot_of_job(self.job_id)
        if shot is None:
            self.report({'ERROR'}, "The job's shot is gone")
            return {'CANCELLED'}
        queued, problems, _reused = runtime.submit(scene, [shot], force=True)
        for problem in problems:
            self.report({'WARNING'}, problem)
        return {'FINISHED'} if queued else {'CANCELLED'}


class SEQUENCER_OT_shotline_send_to_farm(bpy.types.Operator):
    """Send the saved file's shots to the Flamenco farm (one task per shot, then the takes assembled)"""

    bl_idname = "sequencer.shotline_send_to_farm"
    bl_label = "Send to Farm"

    selected: BoolProperty(name="Selected Shots Only", default=False)  # type: ignore

    @classmethod
    def poll(cls, context):
        return scene_with_editor(context) is not None

    def execute(self, context):
        settings = prefs.get()
        url = settings.flamenco_url.strip() if settings else ""
        try:
            job = farm.job_for(scene_with_editor(context), url, settings.flamenco_batch_script if settings else "",
                               self.selected)
            farm.start_submit(url, job)
        except ValueError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        self.report({'INFO'}, farm.answer())
        return {'FINISHED'}


classes = (PREFERENCES_OT_shotline_test_connection, SEQUENCER_OT_shotline_set_model, SEQUENCER_MT_shotline_models,
           SEQUENCER_OT_shotline_frame_at_playhead,
           SEQUENCER_OT_shotline_add_reference, SEQUENCER_OT_shotline_remove_reference,
           SEQUENCER_OT_shotline_cancel_job, SEQUENCER_OT_shotline_retry_job, SEQUENCER_OT_shotline_send_to_farm)
register, unregister = bpy.utils.register_classes_factory(classes)

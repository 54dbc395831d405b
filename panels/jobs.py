"""The Jobs panel: every job of the scene, with its shot, service, state, time and cost."""

from __future__ import annotations

import time

import bpy

from ..addon.blend import compat, runtime
from ..addon.services import registry

_ICONS = {"queued": 'SORTTIME', "submitting": 'EXPORT', "generating": 'RENDER_ANIMATION', "downloading": 'IMPORT',
          "done": 'CHECKMARK', "failed": 'ERROR', "cancelled": 'CANCEL'}


def _elapsed(job) -> str:
    seconds = int((job.finished or time.time()) - job.created)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _service_label(service_id: str) -> str:
    try:
        return registry.get(service_id).label
    except KeyError:  # a job saved by a version with a service this one lacks
        return service_id


class SEQUENCER_PT_shotline_jobs(bpy.types.Panel):
    bl_space_type = 'SEQUENCE_EDITOR'
    bl_region_type = 'UI'
    bl_category = "Shotline"
    bl_label = "Jobs"
    bl_options = {'DEFAULT_CLOSED'}

    @classmethod
    def poll(cls, context):
        return compat.sequencer_scene(context) is not None

    def draw(self, context):
        scene = compat.sequencer_scene(context)
        prefix = f"{scene.name}\x1f"
        jobs = sorted((j for j in runtime.queue().jobs if j.key.startswith(prefix)), key=lambda j: -j.created)
        if not jobs:
            self.layout.label(text="No jobs yet")
            return
        for job in jobs:
            _scene, shot = runtime.shot_of_job(job.id)
            box = self.layout.box()
            row = box.row()
            row.label(text=shot.name if shot else job.request.shot_name, icon=_ICONS.get(job.state, 'QUESTION'))
            row.label(text=f"{_service_label(job.service_id)}{' · ' + job.request.model if job.request.model else ''}")
            row = box.row()
            progress = f" {job.progress:.0%}" if job.progress is not None and not job.is_finished else ""
            row.label(text=f"{job.state.capitalize()}{progress} · {_elapsed(job)}")
            if job.estimate:
                row.label(text=f"~${job.estimate:.2f}")
            if job.message:
                box.label(text=job.message)
            row = box.row(align=True)
            if not job.is_finished:
                row.operator("sequencer.shotline_cancel_job", text="Cancel", icon='CANCEL').job_id = job.id
            elif job.state in ("failed", "cancelled") and shot is not None:
                row.operator("sequencer.shotline_retry_job", text="Retry", icon='FILE_REFRESH').job_id = job.id


classes = (SEQUENCER_PT_shotline_jobs,)
register, unregister = bpy.utils.register_classes_factory(classes)

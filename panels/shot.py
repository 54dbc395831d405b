"""The Shotline tab of the sequencer sidebar: the project, the active shot and its takes."""

from __future__ import annotations

import bpy

from ..addon.blend import compat, farm, identity, runtime, shots, song
from ..addon.services import registry
from ..operators.common import context_shot


class SEQUENCER_UL_shotline_takes(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.label(text=f"Take {index + 1}", icon='CHECKMARK' if index == data.active_take else 'FILE_MOVIE')
        row.label(text=f"{item.service} · seed {item.seed} · {item.created}")
        row.operator("sequencer.shotline_use_take", text="", icon='PLAY').index = index


class SEQUENCER_PT_shotline_project(bpy.types.Panel):
    bl_space_type = 'SEQUENCE_EDITOR'
    bl_region_type = 'UI'
    bl_category = "Shotline"
    bl_label = "Shotline"

    @classmethod
    def poll(cls, context):
        return compat.sequencer_scene(context) is not None

    def draw(self, context):
        layout = self.layout
        scene = compat.sequencer_scene(context)
        settings = scene.shotline
        song_strip = song.strip(scene)
        ed = scene.sequence_editor
        if song.name_shown_is_stale(scene):  # the song strip was renamed; a draw may not write
            runtime.resolve_copies_soon()
        if ed:
            layout.prop_search(settings, "song", ed, "strips_all" if hasattr(ed, "strips_all") else "sequences_all",
                               text="Song", icon='SOUND')
        layout.label(text=f"Following: {song_strip.name}" if song_strip else "No sound strip: add the song",
                     icon='INFO')
        layout.prop(settings, "take_channel_offset")
        layout.prop(settings, "media_folder")
        layout.prop(settings, "workflow")
        row = layout.row(align=True)
        if settings.spent:
            row.label(text=f"Spent ${settings.spent:.2f}", icon='FUND')
        row.prop(settings, "budget")
        row = layout.row(align=True)
        row.operator("sequencer.shotline_make_shots", icon='SEQ_STRIP_META')
        row.operator("sequencer.shotline_add_shot", icon='ADD')
        row = layout.row(align=True)
        row.operator("sequencer.shotline_generate", icon='RENDER_ANIMATION')
        row.operator("sequencer.shotline_refit_takes", text="", icon='SNAP_ON')
        row = layout.row(align=True)
        row.operator("sequencer.shotline_send_to_farm", icon='NETWORK_DRIVE')
        if farm.answer():
            layout.label(text=farm.answer(), icon='INFO')
        active = runtime.queue().active()
        if active:
            layout.label(text=f"{len(active)} job(s) running", icon='TIME')
            layout.operator("sequencer.shotline_cancel", text="Cancel All", icon='CANCEL').all = True


class SEQUENCER_PT_shotline_music(bpy.types.Panel):
    bl_space_type = 'SEQUENCE_EDITOR'
    bl_region_type = 'UI'
    bl_category = "Shotline"
    bl_label = "Music"
    bl_parent_id = "SEQUENCER_PT_shotline_project"

    def draw(self, context):
        layout = self.layout
        scene = compat.sequencer_scene(context)
        result = song.analysis(scene)
        running = song.analysing(scene)
        if running:
            row = layout.row(align=True)
            row.progress(factor=running.progress, type='BAR',
                         text=f"Analysing {running.song_name} {running.progress:.0%}")
            row.operator("sequencer.shotline_cancel_analysis", text="", icon='CANCEL')
        else:
            layout.operator("sequencer.shotline_analyze_song", icon='SOUND')
        if song.problem(scene):
            layout.label(text=song.problem(scene), icon='ERROR')
        for copy in song.copies(scene):
            layout.label(text=f"\"{copy.name}\" is a copy of the song strip: not followed", icon='INFO')
        if result is None:
            if not running:
                layout.label(text="Not analysed yet")
            return
        layout.label(text=f"{result.tempo_text} · {result.beats_per_bar}/4 · {len(result.beats)} beats", icon='TIME')
        row = layout.row(align=True)
        row.operator("sequencer.shotline_correct_grid", text="½×").action = 'HALVE'
        row.operator("sequencer.shotline_correct_grid", text="2×").action = 'DOUBLE'
        shift = row.operator("sequencer.shotline_correct_grid", text="Downbeat +1")
        shift.action, shift.amount = 'DOWNBEAT', 1
        row.operator("sequencer.shotline_correct_grid", text="", icon='LOOP_BACK').action = 'RESET'
        row = layout.row(align=True)
        bars = row.operator("sequencer.shotline_analyze_song", text="Bar Markers")
        bars.markers = 'BARS'
        row.operator("sequencer.shotline_remove_markers", text="", icon='X')
        layout.operator("sequencer.shotline_lay_out", icon='SEQ_STRIP_DUPLICATE')
        layout.operator("sequencer.shotline_snap", icon='SNAP_ON')


class SEQUENCER_PT_shotline_shot(bpy.types.Panel):
    bl_space_type = 'SEQUENCE_EDITOR'
    bl_region_type = 'UI'
    bl_category = "Shotline"
    bl_label = "Shot"

    @classmethod
    def poll(cls, context):
        return context_shot(context) is not None

    def draw(self, context):
        layout = self.layout
        shot = context_shot(context)
        props = shot.shotline
        layout.label(text=shot.name, icon='SEQUENCE')
        if identity.find_copies([shot.id_data]):
            layout.label(text="Copied Shotline strips found: each copy becomes its own", icon='INFO')
            runtime.resolve_copies_soon()
        layout.prop(props, "prompt")
        if not props.prompt and shot.type == 'TEXT':
            text = shots.prompt(shot)
            layout.label(text=f"Using the strip's text: {text[:60]}" if text else runtime.NO_PROMPT, icon='INFO')
        layout.prop(props, "service")
        service = registry.get(props.service)
        if service.models():
            layout.menu("SEQUENCER_MT_shotline_models", text=props.model or "Default Model", icon='NODE')
            layout.prop(props, "options")
        if service.uses_workflow:
            layout.prop(props, "workflow", text="Workflow (this shot)")
            layout.prop(props, "pins")
        caps = service.capabilities_for(props.model)
        if caps.negative_prompt or props.negative_prompt:
            layout.prop(props, "negative_prompt")
        if caps.seed:
            row = layout.row(align=True)
            row.prop(props, "random_seed", text="", icon='FILE_REFRESH')
            row.prop(props, "seed")
        layout.prop(props, "fit")
        # only what this service and model accept; a value set for another one stays and is refused on Generate
        for name, accepted in (("reference_image", caps.first_frame), ("last_frame_image", caps.last_frame),
                               ("source_video", caps.video_to_video), ("audio", caps.lip_sync)):
            if accepted or getattr(props, name):
                layout.prop(props, name)
        if caps.reference_images or len(props.references):
            box = layout.box()
            row = box.row()
            row.label(text=f"References ({len(props.references)}/{caps.reference_images})", icon='IMAGE_DATA')
            row.operator("sequencer.shotline_add_reference", text="", icon='ADD')
            for index, reference in enumerate(props.references):
                row = box.row(align=True)
                row.prop(reference, "filepath", text="")
                row.operator("sequencer.shotline_remove_reference", text="", icon='X').index = index
        if caps.price_per_second:
            left, right = compat.span(shot)
            seconds = (right - left) / shots.scene_fps(shot.id_data)
            layout.label(text=f"About ${float(seconds) * caps.price_per_second:.2f} per take", icon='FUND')
        status_row = layout.row()
        status = props.bl_rna.properties["status"].enum_items[props.status]
        if props.status in {'GENERATING', 'DOWNLOADING'} and hasattr(status_row, "progress"):
            status_row.progress(factor=props.progress, type='BAR', text=f"{status.name} {props.progress:.0%}")
        else:
            status_row.label(text=status.name, icon=status.icon)
        if props.status_message:
            layout.label(text=props.status_message)
        if props.status_message.startswith(runtime.SAME_REQUEST):
            layout.operator("sequencer.shotline_generate", text="Pay for a New Take", icon='FUND').force = True
        if props.status in {'QUEUED', 'GENERATING', 'DOWNLOADING'}:
            layout.operator("sequencer.shotline_cancel", icon='CANCEL').all = False
        layout.template_list("SEQUENCER_UL_shotline_takes", "", props, "takes", props, "active_take", rows=3)
        if 0 <= props.active_take < len(props.takes):
            take = props.takes[props.active_take]
            if take.cost:
                layout.label(text=f"Take {props.active_take + 1}: {'~' if take.cost_estimated else ''}${take.cost:.2f}"
                             f"{' · ' + take.model if take.model else ''}")


classes = (SEQUENCER_UL_shotline_takes, SEQUENCER_PT_shotline_project, SEQUENCER_PT_shotline_music,
           SEQUENCER_PT_shotline_shot)
register, unregister = bpy.utils.register_classes_factory(classes)

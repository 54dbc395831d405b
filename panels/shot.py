"""The Shotline tab of the sequencer sidebar: the project, the active shot and its takes."""

from __future__ import annotations

import bpy

from ..addon.blend import compare, compat, farm, identity, runtime, shots, song, takes
from ..addon.services import registry
from ..operators.common import context_shot
from . import cast as cast_panel


class SEQUENCER_UL_shotline_takes(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        gone = takes.missing(item)
        row.label(text=f"Take {index + 1}",
                  icon='ERROR' if gone else 'CHECKMARK' if index == data.active_take else 'FILE_MOVIE')
        model = f" {item.model}" if item.model else ""
        row.label(text=f"file missing: {item.filepath}" if gone else
                  f"{item.service}{model} · seed {item.seed} · {item.created}")
        star = row.operator("sequencer.shotline_favourite_take", text="",
                            icon='SOLO_ON' if item.favourite else 'SOLO_OFF', emboss=False)
        star.index = index


def _draw_frame_source(layout, scene, props, end: str, file_prop: str) -> None:
    """Where the shot's first or last frame comes from."""
    source = getattr(props, end)
    col = layout.column(align=True)
    row = col.row(align=True)
    row.prop(source, "source", text=props.bl_rna.properties[file_prop].name)
    row.operator("sequencer.shotline_frame_at_playhead", text="", icon='EYEDROPPER').end = \
        'FIRST' if end == "first_frame" else 'LAST'
    if source.source == 'FILE':
        col.prop(props, file_prop, text="")
        return
    if source.source == 'STRIP':
        ed = scene.sequence_editor
        col.prop_search(source, "strip", ed, compat.STRIPS_ALL, text="")
        col.prop(source, "frame")
    col.prop(source, "as_shown")


def draw_inputs(layout, scene, props, caps) -> None:
    """Only what this service and model accept; a value set for another one stays and is refused on Generate."""
    if caps.first_frame or props.reference_image or props.first_frame.source != 'FILE':
        _draw_frame_source(layout, scene, props, "first_frame", "reference_image")
    if caps.last_frame or props.last_frame_image or props.last_frame.source != 'FILE':
        _draw_frame_source(layout, scene, props, "last_frame", "last_frame_image")
    ed = scene.sequence_editor
    if caps.video_to_video or props.source_video or props.video_strip:
        col = layout.column(align=True)
        col.prop(props, "source_video")
        col.prop_search(props, "video_strip", ed, compat.STRIPS_ALL)
    if caps.lip_sync or props.audio or props.song_audio:
        col = layout.column(align=True)
        col.prop(props, "song_audio")
        if not props.song_audio:
            col.prop(props, "audio")


def draw_takes(layout, context, shot) -> None:
    props = shot.shotline
    col = layout.column()
    col.enabled = not props.locked  # the final take stays shown until the shot is unlocked
    col.template_list("SEQUENCER_UL_shotline_takes", "", props, "takes", props, "active_take", rows=3)
    row = layout.row(align=True)
    row.operator("sequencer.shotline_step_take", text="", icon='TRIA_LEFT').previous = True
    row.operator("sequencer.shotline_step_take", text="", icon='TRIA_RIGHT').previous = False
    row.operator("sequencer.shotline_reuse_take", text="Reuse", icon='COPYDOWN')
    row.operator("sequencer.shotline_delete_take", text="", icon='TRASH')
    row = layout.row(align=True)
    if compare.active(shot.id_data, shot):
        row.operator("sequencer.shotline_compare_takes", text="Side by Side", icon='SPLIT_VERTICAL').mode = \
            'SIDE_BY_SIDE'
        row.operator("sequencer.shotline_compare_takes", text="Wipe", icon='IMAGE_REFERENCE').mode = 'WIPE'
        row.operator("sequencer.shotline_end_compare", text="", icon='X')
    elif len(props.takes) > 1:
        row.operator("sequencer.shotline_compare_takes", text="Compare A/B", icon='SPLIT_VERTICAL')
    if not 0 <= props.active_take < len(props.takes):
        return
    take = props.takes[props.active_take]
    cost = f" · {'~' if take.cost_estimated else ''}${take.cost:.2f}" if take.cost else ""
    layout.label(text=f"Take {props.active_take + 1}: {take.duration:.2f} s{cost}"
                 f"{' · ' + take.model if take.model else ''}")
    if take.negative_prompt:
        layout.label(text=f"Negative: {take.negative_prompt[:60]}")
    if take.references:
        layout.label(text=f"Inputs: {len(take.references.splitlines())} file(s)", icon='IMAGE_DATA')
    if takes.missing(take):
        layout.operator("sequencer.shotline_relink_takes", icon='FILE_REFRESH')


def draw_progress(layout, scene) -> None:
    """Where the project stands: shots locked, open, empty; money spent; the trash."""
    all_shots = shots.shots(scene)
    if not all_shots:
        return
    locked = sum(1 for s in all_shots if s.shotline.locked)
    empty = sum(1 for s in all_shots if not len(s.shotline.takes))
    box = layout.box()
    box.label(text=f"{locked} of {len(all_shots)} shots locked · {len(all_shots) - locked - empty} open · "
              f"{empty} without takes", icon='CHECKBOX_HLT' if locked == len(all_shots) else 'SEQUENCE')
    total = sum(len(s.shotline.takes) for s in all_shots)
    box.label(text=f"{total} takes · spent ${scene.shotline.spent:.2f}", icon='FUND')
    box.operator("sequencer.shotline_check_takes", icon='FILE_REFRESH')
    if len(scene.shotline.trash):
        row = box.row()
        row.label(text=f"{len(scene.shotline.trash)} deleted take(s) in the trash", icon='TRASH')
        row.operator("sequencer.shotline_empty_trash", text="Empty")
        for index, trashed in list(enumerate(scene.shotline.trash))[-3:]:  # the latest: an easy way back
            row = box.row()
            row.label(text=f"{trashed.shot}: {bpy.path.basename(trashed.original or trashed.filepath)}")
            row.operator("sequencer.shotline_restore_take", text="", icon='LOOP_BACK').index = index


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
            layout.prop_search(settings, "song", ed, compat.STRIPS_ALL,
                               text="Song", icon='SOUND')
        layout.label(text=f"Following: {song_strip.name}" if song_strip else "No sound strip: add the song",
                     icon='INFO')
        layout.prop(settings, "take_channel_offset")
        layout.prop(settings, "media_folder")
        layout.prop(settings, "workflow")
        layout.prop(settings, "budget")
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
        draw_progress(layout, scene)
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
        draw_inputs(layout, shot.id_data, props, caps)
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
        cast_panel.draw_shot_cast(layout, shot.id_data, shot)


class SEQUENCER_PT_shotline_takes(bpy.types.Panel):
    bl_space_type = 'SEQUENCE_EDITOR'
    bl_region_type = 'UI'
    bl_category = "Shotline"
    bl_label = "Takes"
    bl_parent_id = "SEQUENCER_PT_shotline_shot"

    @classmethod
    def poll(cls, context):
        return context_shot(context) is not None

    def draw(self, context):
        layout = self.layout
        shot = context_shot(context)
        props = shot.shotline
        row = layout.row(align=True)
        row.prop(props, "locked", text="Locked" if props.locked else "Lock", icon='LOCKED' if props.locked else 'UNLOCKED')
        row.prop(props, "take_limit", text="Limit")
        if not props.locked:
            row = layout.row(align=True)
            row.operator("sequencer.shotline_generate", text="Regenerate", icon='FILE_REFRESH').seed = 'NEW'
            row.operator("sequencer.shotline_generate", text="Same Seed").seed = 'SAME'
            row = layout.row(align=True)
            scene = shot.id_data
            row.prop(scene.shotline, "variations", text="")
            row.operator("sequencer.shotline_generate", text="Variations", icon='MOD_ARRAY').variations = \
                scene.shotline.variations
            row = layout.row(align=True)
            row.operator("sequencer.shotline_match_neighbour", icon='COLOR')
            row.operator("sequencer.shotline_clear_match", text="", icon='X')
        draw_takes(layout, context, shot)


classes = (SEQUENCER_UL_shotline_takes, SEQUENCER_PT_shotline_project, SEQUENCER_PT_shotline_music,
           SEQUENCER_PT_shotline_shot, SEQUENCER_PT_shotline_takes)
register, unregister = bpy.utils.register_classes_factory(classes)

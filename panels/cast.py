"""The Cast sub-panel of the project, and the cast lines of the Shot panel."""

from __future__ import annotations

import bpy

from ..addon.blend import cast, compat, runtime
from ..addon.services import registry


class SEQUENCER_UL_shotline_cast(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False, icon=cast.KIND_ICONS[item.kind])
        row.label(text=f"{len(item.images)} image(s)" if item.images else "no image")


class SEQUENCER_PT_shotline_cast(bpy.types.Panel):
    bl_space_type = 'SEQUENCE_EDITOR'
    bl_region_type = 'UI'
    bl_category = "Shotline"
    bl_label = "Cast"
    bl_parent_id = "SEQUENCER_PT_shotline_project"

    def draw(self, context):
        layout = self.layout
        scene = compat.sequencer_scene(context)
        settings = scene.shotline
        row = layout.row()
        row.template_list("SEQUENCER_UL_shotline_cast", "", settings, "cast", settings, "cast_index", rows=3)
        column = row.column(align=True)
        column.operator("sequencer.shotline_cast_add", text="", icon='ADD')
        column.operator("sequencer.shotline_cast_remove", text="", icon='REMOVE')
        member = cast.active(scene)
        if member is None:
            layout.label(text="Characters, places and props whose stills go with their shots", icon='INFO')
            return
        layout.prop(member, "kind")
        box = layout.box()
        row = box.row()
        row.label(text=f"{member.name}: {len(member.images)} image(s)", icon='IMAGE_DATA')
        row.operator("sequencer.shotline_cast_add_image", text="", icon='ADD')
        for index, image in enumerate(member.images):
            row = box.row(align=True)
            row.prop(image, "filepath", text="")
            row.operator("sequencer.shotline_cast_remove_image", text="", icon='X').index = index
        row = layout.row(align=True)
        row.operator("sequencer.shotline_cast_assign", icon='LINKED')
        row.operator("sequencer.shotline_cast_unassign", icon='UNLINKED')


def draw_shot_cast(layout, scene, shot) -> None:
    """The shot's cast field, who its prompt names, and what of their stills its service gets."""
    props = shot.shotline
    if cast.renamed(scene):  # a draw may not write: the shots follow on the next tick
        runtime.resolve_copies_soon()
    layout.prop(props, "cast")
    named = cast.who(scene, shot)
    if named.from_prompt:
        layout.label(text=f"The prompt names: {', '.join(named.from_prompt)}", icon='USER')
    if named.unknown:
        layout.label(text=f"Not in the cast: {', '.join(named.unknown)}", icon='ERROR')
    if not named.names:
        return
    limit = registry.get(props.service).capabilities_for(props.model).reference_images
    if not limit:
        layout.label(text="This model takes no reference images: the cast's stills are not sent", icon='INFO')
        return
    try:
        note = cast.reference_paths(scene, shot, limit)[1]
    except ValueError as err:
        layout.label(text=str(err), icon='ERROR')
        return
    if note:
        layout.label(text=note, icon='INFO')


classes = (SEQUENCER_UL_shotline_cast, SEQUENCER_PT_shotline_cast)
register, unregister = bpy.utils.register_classes_factory(classes)

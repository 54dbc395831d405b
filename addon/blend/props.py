"""Shotline's data on strips and scenes (saved in the .blend; never secrets)."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from .. import timing
from . import compat

ROLES = [
    ('NONE', "None", "Not Shotline's"),
    ('SHOT', "Shot", "A shot: carries a prompt and takes"),
    ('TAKE', "Take", "Shows the shot's active take"),
    ('LOOP', "Loop", "Repeats the take to fill a longer shot"),
    ('SONG', "Song", "The sound strip the timing follows"),
]

FIT_ITEMS = [
    ('STRETCH', "Stretch", "Slow the clip down to fill the shot"),
    ('HOLD', "Hold Last Frame", "Play at real speed, then hold the last frame"),
    ('LOOP', "Loop", "Play at real speed, then start again"),
    ('SHORT', "Leave Short", "Play at real speed and flag the shot as short"),
]

STATUS_ITEMS = [
    ('NONE', "Not Generated", "", 'BLANK1', 0),
    ('QUEUED', "Queued", "", 'SORTTIME', 1),
    ('GENERATING', "Generating", "", 'RENDER_ANIMATION', 2),
    ('DOWNLOADING', "Downloading", "", 'IMPORT', 3),
    ('PLACED', "Placed", "", 'CHECKMARK', 4),
    ('FAILED', "Failed", "", 'ERROR', 5),
    ('CANCELLED', "Cancelled", "", 'CANCEL', 6),
    ('SHORT', "Short", "The take is shorter than the shot", 'INFO', 7),
]


def _show_active_take(self, _context):
    """Choosing a row in the takes list shows that take in the take strip (the picture, not just
    the checkmark). Placing a take sets the row itself: then the strip already shows it."""
    from . import placement, shots

    index = self.active_take
    if not 0 <= index < len(self.takes):
        return
    scene = self.id_data
    pointer = self.as_pointer()  # (path_from_id cannot reach a strip's property group)
    shot = next((s for s in shots.shots(scene) if s.shotline.as_pointer() == pointer), None)
    if shot is None:
        return
    take = self.takes[index]
    strip = shots.take_strip(scene, shot)
    if strip is not None and strip.filepath == take.filepath:
        return
    try:
        placement.place_take(scene, shot, take.filepath, timing.rate(take.fps) if take.fps > 0 else None)
    except (placement.PlacementError, RuntimeError) as err:
        self.status_message = f"Take {index + 1} cannot be shown: {err}"


def _song_picked(self, _context) -> None:
    from . import song
    song.choose_named(self.id_data, self.song)


def _service_items() -> list[tuple[str, str, str]]:
    """Fixed when the add-on loads, in the registry's order (files store the position; new services
    are appended). Static, not an items callback: Blender 4.5 may run such a callback from the
    interface without the GIL while job workers run Python."""
    from ..services import registry
    return [(s.id, s.label, s.label) for s in registry.all_services()]


class SHOTLINE_PG_take(bpy.types.PropertyGroup):
    filepath: StringProperty(name="File", subtype='FILE_PATH', options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore
    service: StringProperty(name="Service")  # type: ignore
    seed: IntProperty(name="Seed")  # type: ignore
    prompt: StringProperty(name="Prompt")  # type: ignore
    created: StringProperty(name="Created")  # type: ignore
    fps: FloatProperty(name="FPS")  # type: ignore
    frames: IntProperty(name="Frames")  # type: ignore
    model: StringProperty(name="Model")  # type: ignore
    cost: FloatProperty(name="Cost", description="USD, as the service reported it or as estimated")  # type: ignore
    cost_estimated: BoolProperty(name="Estimated", description="The service did not report the cost")  # type: ignore
    request_key: StringProperty(name="Request", description="Fingerprint of what was asked: the same request "
                                "again reuses this take instead of paying twice")  # type: ignore


class SHOTLINE_PG_reference(bpy.types.PropertyGroup):
    """A still of a character or a place the service keeps consistent."""

    filepath: StringProperty(name="Image", subtype='FILE_PATH', options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore


class SHOTLINE_PG_strip(bpy.types.PropertyGroup):
    role: EnumProperty(name="Role", items=ROLES, default='NONE')  # type: ignore
    shot_id: StringProperty(name="Shot ID", description="Stable identity of the shot (strips may be renamed)")  # type: ignore
    owner: StringProperty(name="Owner", description="Scene and strip name this strip was made under: "
                          "a copy Blender makes has another name")  # type: ignore
    prompt: StringProperty(name="Prompt", description="What to generate; a Text strip's text is used when empty")  # type: ignore
    placeholder: StringProperty(name="Placeholder", description="Text Shotline wrote on the strip "
                                "(a bar range, a section name): shown, never sent as a prompt")  # type: ignore
    negative_prompt: StringProperty(name="Negative Prompt")  # type: ignore
    seed: IntProperty(name="Seed", min=0, max=2**31 - 1)  # type: ignore
    random_seed: BoolProperty(name="Random Seed", description="Pick a new seed for each take", default=True)  # type: ignore
    service: EnumProperty(name="Service", items=_service_items())  # type: ignore
    model: StringProperty(name="Model", description="The service's model (empty: its default)")  # type: ignore
    options: StringProperty(name="Options", description="The model's own settings as JSON, sent as they are "
                            "(e.g. {\"cfg_scale\": 0.5})")  # type: ignore
    workflow: StringProperty(name="Workflow", subtype='FILE_PATH', options={'PATH_SUPPORTS_BLEND_RELATIVE'},
                             description="This shot's workflow (API format), instead of the project's")  # type: ignore
    pins: StringProperty(name="Pins", description="Where a field goes when the workflow is ambiguous: "
                         "FIELD=NODE_ID.INPUT, comma-separated (e.g. seed=3.noise_seed)")  # type: ignore
    fit: EnumProperty(name="Fit", items=FIT_ITEMS, default='HOLD',
                      description="What to do when the take is shorter than the shot")  # type: ignore
    reference_image: StringProperty(name="First Frame", subtype='FILE_PATH',
                                    description="A still the take starts from",
                                    options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore
    last_frame_image: StringProperty(name="Last Frame", subtype='FILE_PATH', description="A still the take ends on",
                                     options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore
    source_video: StringProperty(name="Source Video", subtype='FILE_PATH',
                                 description="A clip the service transforms (video to video)",
                                 options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore
    audio: StringProperty(name="Audio", subtype='FILE_PATH', description="Sound the take follows (lip-sync)",
                          options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore
    references: CollectionProperty(type=SHOTLINE_PG_reference)  # type: ignore
    status: EnumProperty(name="Status", items=STATUS_ITEMS, default='NONE')  # type: ignore
    status_message: StringProperty(name="Status Message")  # type: ignore
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype='FACTOR')  # type: ignore
    job_id: StringProperty(name="Job")  # type: ignore
    takes: CollectionProperty(type=SHOTLINE_PG_take)  # type: ignore
    active_take: IntProperty(name="Active Take", default=-1, update=_show_active_take)  # type: ignore


class SHOTLINE_PG_scene(bpy.types.PropertyGroup):
    song: StringProperty(name="Song", description="Sound strip the timing follows (empty: the longest)",
                         update=_song_picked)  # type: ignore
    take_channel_offset: IntProperty(name="Take Channel Offset", default=1, min=1, max=32,
                                     description="Take strips go this many channels above their shot")  # type: ignore
    media_folder: StringProperty(name="Media Folder", default="//shotline",
                                 description="Where takes are written, relative to the .blend")  # type: ignore
    jobs: StringProperty(name="Jobs", description="Unfinished jobs, saved with the file")  # type: ignore
    song_analysis: StringProperty(name="Song Analysis", description="Beats, bars and sections of the song (JSON)")  # type: ignore
    song_key: StringProperty(name="Song Key", description="Content hash of the analysed song file")  # type: ignore
    workflow: StringProperty(name="Workflow", subtype='FILE_PATH', options={'PATH_SUPPORTS_BLEND_RELATIVE'},
                             description="The project's workflow for workflow services (a ComfyUI workflow "
                             "exported in API format); read, never edited")  # type: ignore
    workflow_key: StringProperty(name="Workflow Content", description="sha256 of the workflow file the last "
                                 "takes were made with: a workflow changed since is said so")  # type: ignore
    spent: FloatProperty(name="Spent", description="USD spent on this project's takes", min=0.0)  # type: ignore
    budget: FloatProperty(name="Budget", description="USD this project may spend; no new paid job past it "
                          "(0: no cap)", min=0.0, precision=2)  # type: ignore


classes = (SHOTLINE_PG_take, SHOTLINE_PG_reference, SHOTLINE_PG_strip, SHOTLINE_PG_scene)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def refresh_services() -> None:
    """List the registry's services again (after one was added while the add-on runs)."""
    SHOTLINE_PG_strip.service = EnumProperty(name="Service", items=_service_items())


def register():
    _register_classes()
    compat.StripType.shotline = PointerProperty(type=SHOTLINE_PG_strip)
    bpy.types.Scene.shotline = PointerProperty(type=SHOTLINE_PG_scene)


def unregister():
    del bpy.types.Scene.shotline
    del compat.StripType.shotline
    _unregister_classes()

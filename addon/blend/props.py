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
    ('COMPARE', "Compare", "Shows a take beside or over another (A/B compare); removed when the compare ends"),
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
    negative_prompt: StringProperty(name="Negative Prompt")  # type: ignore
    references: StringProperty(name="References", description="The still and video inputs sent, one per line")  # type: ignore
    duration: FloatProperty(name="Duration", description="Seconds of the clip", unit='TIME_ABSOLUTE')  # type: ignore
    settings: StringProperty(name="Settings", description="The shot's settings that made this take (JSON): "
                             "Reuse Settings puts them back on the shot")  # type: ignore
    content_key: StringProperty(name="Content", description="sha256 of the take's file: Relink finds it "
                                "by content when it was moved or renamed")  # type: ignore
    favourite: BoolProperty(name="Favourite", description="One of the director's picks")  # type: ignore
    size: IntProperty(name="Size", description="Bytes of the take's file (0: unknown): Relink reads only "
                      "files of this size")  # type: ignore


class SHOTLINE_PG_reference(bpy.types.PropertyGroup):
    """A still of a character or a place the service keeps consistent."""

    filepath: StringProperty(name="Image", subtype='FILE_PATH', options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore


FRAME_SOURCES = [
    ('FILE', "Image File", "A still on disk"),
    ('STRIP', "Timeline Frame", "A frame of a strip on the timeline (live footage, a still, another take)"),
    ('PREVIOUS', "Previous Shot's Last Frame", "The last frame of the previous shot's active take (continuity)"),
    ('NEXT', "Next Shot's First Frame", "The first frame of the next shot's active take"),
]


class SHOTLINE_PG_frame_source(bpy.types.PropertyGroup):
    """Where a shot's first or last frame comes from; taken afresh on every Generate."""

    source: EnumProperty(name="From", items=FRAME_SOURCES, default='FILE')  # type: ignore
    strip: StringProperty(name="Strip", description="The strip the frame is taken from")  # type: ignore
    frame: IntProperty(name="Frame", description="Scene frame the picture is taken at")  # type: ignore
    as_shown: BoolProperty(name="As Shown", default=True,
                           description="As the sequencer shows it (grading, transform and strips above "
                           "included); off: the strip's own source picture")  # type: ignore


class SHOTLINE_PG_cast_member(bpy.types.PropertyGroup):
    """A character, place or prop of the project: its stills go with every shot it is in."""

    kind: EnumProperty(name="Kind", items=[('CHARACTER', "Character", ""), ('PLACE', "Place", ""),
                                           ('PROP', "Prop", "")], default='CHARACTER')  # type: ignore
    images: CollectionProperty(type=SHOTLINE_PG_reference)  # type: ignore
    known_name: StringProperty(name="Known Name", description="The name shots' cast fields know it by: a "
                               "rename in the list is carried into them")  # type: ignore


class SHOTLINE_PG_trashed(bpy.types.PropertyGroup):
    """A deleted take's file, moved to the media folder's trash until the director empties it."""

    filepath: StringProperty(name="File", subtype='FILE_PATH', options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore
    original: StringProperty(name="Was", subtype='FILE_PATH', options={'PATH_SUPPORTS_BLEND_RELATIVE'})  # type: ignore
    shot: StringProperty(name="Shot")  # type: ignore
    shot_id: StringProperty(name="Shot ID")  # type: ignore
    take: StringProperty(name="Take", description="The deleted take's record (JSON), for Restore")  # type: ignore
    deleted: StringProperty(name="Deleted")  # type: ignore


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
    first_frame: PointerProperty(type=SHOTLINE_PG_frame_source)  # type: ignore
    last_frame: PointerProperty(type=SHOTLINE_PG_frame_source)  # type: ignore
    video_strip: StringProperty(name="Video From Strip", description="A strip on the timeline (live footage) "
                                "whose frames under the shot are sent as the source video")  # type: ignore
    song_audio: BoolProperty(name="Song Under the Shot", description="Send the slice of the song under the "
                             "shot as the audio to follow (lip-sync)")  # type: ignore
    cast: StringProperty(name="Cast", description="Who and what is in the shot: cast names, comma-separated "
                         "(names written in the prompt count too)")  # type: ignore
    locked: BoolProperty(name="Locked", description="The active take is final: no batch sends this shot and "
                         "it cannot be regenerated until unlocked")  # type: ignore
    take_limit: IntProperty(name="Take Limit", min=0, description="At most this many takes (0: no limit)")  # type: ignore
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
    variations: IntProperty(name="Variations", default=4, min=2, soft_max=8, max=32,
                            description="How many takes Generate Variations makes of each shot")  # type: ignore
    cast: CollectionProperty(type=SHOTLINE_PG_cast_member)  # type: ignore
    cast_index: IntProperty(name="Active Cast Member")  # type: ignore
    trash: CollectionProperty(type=SHOTLINE_PG_trashed)  # type: ignore


classes = (SHOTLINE_PG_take, SHOTLINE_PG_reference, SHOTLINE_PG_frame_source, SHOTLINE_PG_cast_member,
           SHOTLINE_PG_trashed, SHOTLINE_PG_strip, SHOTLINE_PG_scene)
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

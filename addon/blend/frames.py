"""Pictures taken from the timeline, written as PNGs: a frame as the sequencer shows it, or a strip's
own source picture at a frame.

Used for continuity (a neighbouring take's last or first frame), stills of live footage sent as
references, the frames of a live-footage segment and the colour statistics of Match to Neighbour.
Rendering runs on the main thread (one frame: tens of milliseconds); every setting it changes is put
back. The sequencer's caches are off while it renders: Blender 5.x serves a retimed clip's cached
neighbouring source frame where an uncached render shows the nearest one.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import bpy

from . import compat

SOURCE_TYPES = ('MOVIE', 'IMAGE')
_CACHES = ("use_cache_raw", "use_cache_final", "use_prefetch")
_OVERRIDE_UNSAFE = bpy.app.version < (5, 0, 0)  # see compat.operators_on
FLAT_VIEW = dict(  # view settings that write the sequencer's values to a PNG unchanged
    view_transform='Standard', look='None', exposure=0.0, gamma=1.0, use_curve_mapping=False)


@contextmanager
def kept(owner, **values):
    """Set attributes of `owner` for the duration, then put the old values back."""
    old = {name: getattr(owner, name) for name in values}
    try:
        for name, value in values.items():
            setattr(owner, name, value)
        yield
    finally:
        for name, value in old.items():
            setattr(owner, name, value)


def _ancestors(strip) -> list:
    """The meta strips `strip` sits in, innermost first."""
    found = []
    parent = strip.parent_meta()
    while parent is not None:
        found.append(parent)
        parent = parent.parent_meta()
    return found


@contextmanager
def _only(scene, keep):
    """Show only `keep` (and the strips they are made from, and the metas they sit in) for the
    duration: every other strip is muted, the kept ones and their channels unmuted."""
    if keep is None:
        yield
        return
    ed = scene.sequence_editor
    needed, shown = set(), []
    pending = list(keep)
    while pending:  # an effect strip needs its inputs, a meta strip its content
        strip = pending.pop()
        if strip.as_pointer() in needed:
            continue
        needed.add(strip.as_pointer())
        shown.append(strip)
        pending += [s for s in (getattr(strip, "input_1", None), getattr(strip, "input_2", None)) if s]
        pending += list(compat.strips(strip)) if strip.type == 'META' else []
    for strip in list(shown):
        for meta in _ancestors(strip):
            if meta.as_pointer() not in needed:
                needed.add(meta.as_pointer())
                shown.append(meta)
    muted = [s for s in compat.strips_all(ed) if s.as_pointer() not in needed and not s.mute]
    unmuted = [s for s in shown if s.mute]
    # a channel's mute lives on the editor's top-level channels (a meta's inner ones are its own)
    channels = [c for c in {s.channel for s in shown if s.parent_meta() is None}
                if c < len(ed.channels) and ed.channels[c].mute]
    try:
        for strip in muted:
            strip.mute = True
        for strip in unmuted:
            strip.mute = False
        for channel in channels:
            ed.channels[channel].mute = False
        yield
    finally:
        for strip in muted:
            strip.mute = False
        for strip in unmuted:
            strip.mute = True
        for channel in channels:
            ed.channels[channel].mute = True


@contextmanager
def _current(scene):
    """Make `scene` the one operators act on. Not with a context override on 4.5 (see
    compat.operators_on): there the window shows `scene` for the duration."""
    context = bpy.context
    windows = context.window_manager.windows if context.window_manager else ()
    if context.scene == scene or not _OVERRIDE_UNSAFE or not windows:
        with compat.operators_on(scene):
            yield
        return
    window = windows[0]
    shown = window.scene
    window.scene = scene
    try:
        yield
    finally:
        window.scene = shown


def render_frame(scene, frame: int, path: Path, only=None) -> Path:
    """Write the sequencer's picture at scene frame `frame` to `path` (PNG, 8-bit RGB), at the
    scene's output size and colour management: what the preview shows. With `only`, every other
    strip is muted, so the picture is those strips as the timeline shows them (their modifiers,
    transform and crop applied; shown even when they or their channels are muted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = scene.render.image_settings
    ed = scene.sequence_editor
    caches = {name: False for name in _CACHES if hasattr(ed, name)}
    with kept(scene, frame_current=frame), \
            kept(scene.render, filepath=str(path), use_sequencer=True, use_file_extension=False), \
            kept(settings, file_format='PNG'), kept(settings, color_mode='RGB', color_depth='8'), \
            kept(ed, **caches), _only(scene, only), _current(scene):
        bpy.ops.render.render(write_still=True, scene=scene.name)
    if not path.is_file():
        raise RuntimeError(f"Blender did not write the frame {frame} to {path}")
    return path


def source_frame(scene, strip, frame: int, path: Path) -> Path:
    """Write the source picture `strip` (a movie or image strip) shows at scene frame `frame` to `path`
    (PNG, 8-bit RGB), at the source's own size, without the strip's modifiers, transform, crop, colour
    settings or animation, and with no view transform: the file's picture. Which source frame it is
    Blender decides, retiming, strobe and reversal included, in a copy of the scene removed after.
    Raises ValueError (with what to do) for another kind of strip or a frame the strip does not show."""
    if strip.type not in SOURCE_TYPES:
        raise ValueError(f"\"{strip.name}\" is a {strip.type.lower()} strip: its own picture can be taken from a "
                         "movie or image strip only (take it as shown instead)")
    left, right = compat.span(strip)
    if not left <= frame < right:
        raise ValueError(f"\"{strip.name}\" shows nothing at frame {frame}: pick a frame from {left} to {right - 1}")
    width, height = _source_size(strip, frame)
    with _copy_of(scene) as copy:
        twin = compat.strips_all(copy.sequence_editor)[strip.name]
        _bare(twin)
        render = copy.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.dither_intensity = 0.0  # no noise added on the way to 8 bits
        for name, value in FLAT_VIEW.items():
            setattr(copy.view_settings, name, value)
        return render_frame(copy, frame, path, only=[twin])


@contextmanager
def _copy_of(scene):
    """A copy of `scene` (its strips, retiming included) without animation, removed after."""
    copy = scene.copy()
    try:
        copy.animation_data_clear()  # animated opacity, transform... would override _bare
        yield copy
    finally:
        bpy.data.scenes.remove(copy)


def _bare(strip) -> None:
    """Take off what the strip adds to its source picture: it then shows the picture as it is."""
    for modifier in strip.modifiers:
        modifier.mute = True
    transform = strip.transform
    transform.offset_x = transform.offset_y = transform.rotation = 0.0
    transform.scale_x = transform.scale_y = 1.0
    crop = strip.crop
    crop.min_x = crop.max_x = crop.min_y = crop.max_y = 0
    strip.use_flip_x = strip.use_flip_y = False
    strip.color_saturation, strip.color_multiply = 1.0, 1.0
    strip.blend_type, strip.blend_alpha = 'ALPHA_OVER', 1.0


def _source_size(strip, frame: int) -> tuple[int, int]:
    """The pixel size of the source picture shown at `frame`. A movie's is read when it is added; an image
    element's size is not to be trusted (an appended element's is left unset), so the image is read."""
    if strip.type == 'MOVIE':
        element = strip.elements[0]
        if element.orig_width > 0 and element.orig_height > 0:
            return element.orig_width, element.orig_height
        filepath, collection = bpy.path.abspath(strip.filepath), bpy.data.movieclips
    else:
        element = strip.strip_elem_from_frame(frame)
        filepath, collection = bpy.path.abspath(strip.directory + element.filename), bpy.data.images
    try:
        data = collection.load(filepath, check_existing=False)
    except RuntimeError:
        raise ValueError(f"Blender cannot read \"{bpy.path.basename(filepath)}\" of \"{strip.name}\"") from None
    try:
        width, height = data.size[:]
    finally:
        collection.remove(data)
    if width <= 0 or height <= 0:
        raise ValueError(f"Blender cannot read \"{bpy.path.basename(filepath)}\" of \"{strip.name}\"")
    return width, height

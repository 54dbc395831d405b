"""The project's cast (characters, places, props) and the stills a shot sends for it."""

from __future__ import annotations

import os

import bpy

from .. import cast as names

KIND_ICONS = {'CHARACTER': 'USER', 'PLACE': 'WORLD', 'PROP': 'PACKAGE'}


def find(scene, name: str):
    """The cast member called `name` (any case or spelling of it), or None."""
    wanted = names.name_key(name)
    return next((m for m in scene.shotline.cast if names.name_key(m.name) == wanted), None)


def active(scene):
    settings = scene.shotline
    return settings.cast[settings.cast_index] if 0 <= settings.cast_index < len(settings.cast) else None


def who(scene, shot) -> names.InShot:
    """Who the shot names: its cast field first, then the prompt's mentions."""
    from . import shots  # imported here: shots imports this module to build requests

    return names.in_shot(shot.shotline.cast, shots.prompt(shot), [m.name for m in scene.shotline.cast])


def members_in(scene, shot) -> list:
    """The cast members in `shot`, in the order `who` names them."""
    return [find(scene, name) for name in who(scene, shot).names]


def add_member(scene, name: str, kind: str = 'CHARACTER'):
    """A new member, made active. An empty name becomes the kind's ("Place", "Place 2" ...)."""
    name = " ".join(name.split())
    if not name:
        label, number = kind.title(), 1
        name = label
        while find(scene, name) is not None:
            number += 1
            name = f"{label} {number}"
    elif not names.name_key(name):
        raise ValueError(f"\"{name}\" has no letters or digits: a prompt could never name it")
    elif find(scene, name) is not None:
        raise ValueError(f"The cast already has \"{find(scene, name).name}\"")
    member = scene.shotline.cast.add()
    member.name, member.kind, member.known_name = name, kind, name
    scene.shotline.cast_index = len(scene.shotline.cast) - 1
    return member


def remove_member(scene, index: int) -> int:
    """Remove a member and its name from every shot's cast field; returns how many shots had it."""
    from . import shots

    cast = scene.shotline.cast
    changed = sum(_drop_name(shot, cast[index].name) for shot in shots.shots(scene))
    cast.remove(index)
    scene.shotline.cast_index = max(0, min(scene.shotline.cast_index, len(cast) - 1))
    return changed


def renamed(scene) -> bool:
    """A member renamed in the list since the shots' cast fields were written."""
    return any(m.known_name != m.name for m in scene.shotline.cast)


def follow_renames(scene) -> list[str]:
    """Carry members renamed in the list into the shots' cast fields (no property callbacks: Blender
    4.5 may run them without the GIL); returns a note per rename."""
    from . import shots

    notes = []
    for member in scene.shotline.cast:
        old, new = member.known_name, member.name
        member.known_name = new
        if not old or names.name_key(old) == names.name_key(new):
            continue
        for shot in shots.shots(scene):
            field = names.field_names(shot.shotline.cast)
            if names.name_key(old) in map(names.name_key, field):
                shot.shotline.cast = ", ".join(new if names.name_key(n) == names.name_key(old) else n for n in field)
        notes.append(f"Cast: \"{old}\" is now \"{new}\" in the shots' cast fields")
    return notes


def add_image(member, filepath: str) -> None:
    """Add a still to `member`, relative to the .blend once it is saved; a missing or non-image file is refused."""
    if not os.path.isfile(bpy.path.abspath(filepath)):
        raise ValueError(f"No image at {filepath}")
    if os.path.splitext(filepath)[1].lower() not in bpy.path.extensions_image:
        raise ValueError(f"{os.path.basename(filepath)} is not an image")
    path = bpy.path.relpath(filepath) if bpy.data.filepath else filepath
    if any(os.path.normpath(bpy.path.abspath(i.filepath)) == os.path.normpath(bpy.path.abspath(path))
           for i in member.images):
        raise ValueError(f"{os.path.basename(filepath)} is already one of {member.name}'s images")
    member.images.add().filepath = path


def assign(shot_strips, member) -> int:
    """Write `member` into the shots' cast fields; returns how many did not have it yet."""
    changed = 0
    for shot in shot_strips:
        field = names.field_names(shot.shotline.cast)
        if names.name_key(member.name) not in map(names.name_key, field):
            shot.shotline.cast = ", ".join(field + [member.name])
            changed += 1
    return changed


def unassign(shot_strips, member) -> int:
    """Take `member` out of the shots' cast fields; returns how many had it there."""
    return sum(_drop_name(shot, member.name) for shot in shot_strips)


def _drop_name(shot, name: str) -> bool:
    field = names.field_names(shot.shotline.cast)
    kept = [n for n in field if names.name_key(n) != names.name_key(name)]
    if len(kept) == len(field):
        return False
    shot.shotline.cast = ", ".join(kept)
    return True


def _path(filepath: str) -> str:
    return os.path.normpath(bpy.path.abspath(filepath))


def reference_paths(scene, shot, limit: int) -> tuple[tuple[str, ...], str]:
    """The stills to send with `shot` to a model that takes `limit` of them, and a note of what
    was left out ("" when nothing was).

    The shot's own references come first, all of them: they are the director's explicit choice,
    and a model taking fewer refuses the shot as before. The cast's stills fill the room left,
    first image of every member before anyone's second, so each member is represented. With a
    `limit` of 0 no cast stills are added. Raises ValueError for a missing file."""
    own = []
    for reference in shot.shotline.references:
        if reference.filepath:
            path = _path(reference.filepath)
            if not os.path.isfile(path):
                raise ValueError(f"The reference image is missing: {path}")
            own.append(path)
    if limit <= 0:
        return tuple(own), ""
    stills = []  # (round, member name, path)
    for member in members_in(scene, shot):
        for n, image in enumerate(i for i in member.images if i.filepath):
            path = _path(image.filepath)
            if not os.path.isfile(path):
                raise ValueError(f"Cast member \"{member.name}\": the image {path} is missing")
            stills.append((n, member.name, path))
    stills.sort(key=lambda s: s[0])  # stable: members keep their order within a round
    seen, unique = set(own), []
    for still in stills:  # a still that is both the shot's and a member's, or two members', goes once
        if still[2] not in seen:
            seen.add(still[2])
            unique.append(still)
    stills = unique
    room = max(0, limit - len(own))
    sent, left = stills[:room], stills[room:]
    note = ""
    if left:
        what = ", ".join(f"{name}: {os.path.basename(path)}" for _n, name, path in left)
        note = (f"{len(left)} of the cast's {len(stills)} reference image(s) left out, "
                f"the model takes {limit} in all: {what}")
    return tuple(own + [path for _n, _name, path in sent]), note


def left_out(scene, shot, service) -> str:
    """What of the cast's stills `service` cannot take with `shot` ("" when all go), for Generate's report."""
    return reference_paths(scene, shot, service.capabilities_for(shot.shotline.model).reference_images)[1]

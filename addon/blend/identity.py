"""Shot identity: a copied, pasted or split shot becomes a shot of its own.

Blender copies a strip's properties with it (Shift+D, copy and paste, split with K), so a copy
carries its original's shot id, takes and job. Every Shotline strip records the scene and name
it was made under (`owner`); Blender gives a copy a new name (".001") in the scene of its
original, so of the strips sharing an id the one still under its recorded name is the original.
The others are copies: a shot copy gets a new id, keeps the prompt and settings and has no
takes; a copied take or loop strip becomes a plain movie strip of the director's, never tied
to two shots; a copied song strip becomes a plain sound strip.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import defaultdict

from . import compat, placement, shots

_COPY_SUFFIX = re.compile(r"\.\d{3,}$")  # the ".001" Blender appends to a copy's name
_PLAIN = {  # what a copied strip of each role becomes
    'TAKE': "a take strip: it is now a plain movie strip",
    'LOOP': "a loop strip: it is now a plain movie strip",
    'COMPARE': "a compare strip: it is now a plain strip",
    'SONG': "the song strip: it is a plain sound strip, the song stays the original",
}


def _ours(scenes):
    for scene in scenes:
        ed = scene.sequence_editor
        for strip in compat.strips_all(ed) if ed else ():
            if strip.shotline.role != 'NONE':
                yield strip


def find_copies(scenes) -> list[tuple[object, object | None]]:
    """(copy, its original) for every Shotline strip that is a copy of another (loops: original None)."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for strip in _ours(scenes):
        groups[(strip.shotline.role, strip.shotline.shot_id)].append(strip)
    found = []
    for (role, _sid), members in groups.items():
        if role in {'LOOP', 'COMPARE'}:  # several strips per shot: each knows its own name
            found += [(s, None) for s in members if s.shotline.owner not in ("", shots.owner_tag(s))]
        elif len(members) > 1:
            original = _original(members)
            found += [(s, original) for s in members if s != original]
    return found


def _original(members):
    """The strip still under its recorded name; failing that (renamed, or saved before names were
    recorded), the one without a copy suffix, the earliest on the timeline."""
    recorded = [s for s in members if s.shotline.owner == shots.owner_tag(s)]
    if recorded:
        return recorded[0]
    return min(members, key=lambda s: (bool(_COPY_SUFFIX.search(s.name)), compat.span(s)[0], s.name))


def resolve(scenes) -> list[str]:
    """Make every copy its own shot (or a plain strip) and record the originals' names.

    Returns a line per copy for the director. Cheap when there is nothing to do."""
    scenes = list(scenes)
    notes = []
    split = []
    for strip, original in find_copies(scenes):
        if strip.shotline.role == 'SHOT':
            _become_own_shot(strip, original)
            notes.append(f"\"{strip.name}\" is a copy of \"{original.name}\": now a shot of its own, no takes yet")
            split.append(original)
        else:
            notes.append(f"\"{strip.name}\" was a copy of {_PLAIN[strip.shotline.role]}")
            strip.shotline.role, strip.shotline.shot_id, strip.shotline.owner = 'NONE', "", ""
    for original in split:
        notes += _refit_if_spilling(original)
    for strip in _ours(scenes):  # a renamed original keeps its identity under its new name
        if strip.shotline.owner != shots.owner_tag(strip):
            shots.claim(strip)
    return notes


def _become_own_shot(strip, original) -> None:
    props = strip.shotline
    props.shot_id = uuid.uuid4().hex
    props.takes.clear()
    props.active_take = -1
    props.job_id = ""
    props.status, props.progress = 'NONE', 0.0
    props.status_message = f"Copy of \"{original.name}\": a shot of its own"
    if props.random_seed:
        props.seed = random.randrange(2**31)
    shots.claim(strip)


def _refit_if_spilling(shot) -> list[str]:
    """A split leaves the original shorter than its take strip: fit the take to it again."""
    scene = shot.id_data
    take = shots.take_strip(scene, shot)
    if take is None:
        return []
    left, right = compat.span(shot)
    t_left, t_right = compat.span(take)
    if left <= t_left and t_right <= right:
        return []
    try:
        placement.refit(scene, shot)
    except (placement.PlacementError, RuntimeError) as err:
        return [f"\"{shot.name}\": its take could not be fitted to the shot again: {err}"]
    return []

"""Take files that moved: relative paths survive moving the project folder; Check Takes reports the
missing takes; Relink finds moved and renamed ones by content, never a file with other content."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import bpy
import pytest

from shotline.addon import framecode, media, relink
from shotline.addon.blend import compat, shots
from shotline.addon.services.animatic import AnimaticService
from shotline.addon.services.base import Capabilities
from vse import add_service, add_shot, generate, op, render_frame, set_fps


def _file(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _key(content: bytes, tmp_path: Path) -> str:
    return media.content_key(_file(tmp_path / "key-source", content))


# --- the search itself (pure) -------------------------------------------------------------------

def test_search_finds_a_moved_and_a_renamed_file_by_content_never_one_with_other_content(tmp_path):
    old = tmp_path / "old" / "shotline" / "Qəmgin" / "take_001.mp4"
    moved, renamed = b"moved take" * 100, b"renamed take" * 100
    wanted = [relink.Wanted(str(old), _key(moved, tmp_path)),
              relink.Wanted(str(old.with_name("take_002.mp4")), _key(renamed, tmp_path)),
              relink.Wanted(str(old.with_name("take_003.mp4")), _key(b"deleted", tmp_path))]
    root = tmp_path / "new"
    # same name, same shot folder, other content: ranked first, read, refused
    _file(root / "shotline" / "Qəmgin" / "take_001.mp4", b"another clip" * 100)
    _file(root / "shotline" / "Qəmgin" / "take_003.mp4", b"another clip too")
    found_moved = _file(root / "elsewhere" / "take_001.mp4", moved)
    found_renamed = _file(root / "shotline" / "Qəmgin" / "лучший дубль.MP4", renamed)
    found = relink.search(wanted, [root])
    assert found.paths == {0: found_moved, 1: found_renamed}
    assert not found.ambiguous and not found.notes and found.visited == 4


def test_a_take_without_content_key_is_matched_by_name_only_when_one_file_fits_best(tmp_path):
    """Takes recorded before content keys: the name and the folders above it decide, and a tie or a
    file another take uses (or was just found to be) is never picked."""
    old = tmp_path / "old" / "shotline"
    root = tmp_path / "new"
    a = _file(root / "shotline" / "A" / "take_001.mp4", b"a")
    _file(root / "shotline" / "B" / "take_001.mp4", b"b")
    _file(root / "x" / "C" / "take_002.mp4", b"c1")
    _file(root / "y" / "C" / "take_002.mp4", b"c2")
    in_use = _file(root / "shotline" / "D" / "take_003.mp4", b"d")
    keyed = _file(root / "E" / "take_004.mp4", b"e")
    wanted = [relink.Wanted(str(old / "A" / "take_001.mp4")),  # A's folder wins over B's
              relink.Wanted(str(old / "C" / "take_002.mp4")),  # x/C and y/C tie
              relink.Wanted(str(old / "D" / "take_003.mp4")),  # another take shows it
              relink.Wanted(str(old / "E" / "take_004.mp4"), _key(b"e", tmp_path)),
              relink.Wanted(str(old / "F" / "take_004.mp4")),  # the only such name is E's take
              relink.Wanted(str(old / "A" / "take_001.mp4"), size=5)]  # the size is known and differs
    found = relink.search(wanted, [root], in_use=[in_use])
    assert found.paths == {0: a, 3: keyed}
    assert found.ambiguous == {1}


def test_search_skips_hidden_folders_links_and_the_trash_and_says_when_it_stopped(tmp_path):
    content = b"take"
    wanted = [relink.Wanted(str(tmp_path / "old" / "take_001.mp4"), _key(content, tmp_path))]
    root = tmp_path / "new"
    _file(root / ".cache" / "take_001.mp4", content)
    _file(root / media.TRASH / "take_001.mp4", content)
    outside = _file(tmp_path / "outside" / "take_001.mp4", content)
    root.joinpath("link").symlink_to(outside.parent, target_is_directory=True)
    root.joinpath("file-link.mp4").symlink_to(outside)
    found = relink.search(wanted, [root])
    assert found.paths == {} and found.visited == 0 and not found.notes

    for i in range(5):
        _file(root / f"a{i}" / "clip.mp4", b"other %d" % i)
    target = _file(root / "z" / "take_001.mp4", content)
    found = relink.search(wanted, [root / "z", root])  # nested roots: each folder walked once
    assert found.paths == {0: target} and found.visited == 6
    capped = relink.search(wanted, [root], max_files=3)
    assert capped.paths == {} and capped.visited == 3
    assert capped.notes == ["stopped after 3 files: folders further on were not searched"]
    budget = relink.search(wanted, [root], max_hashed_bytes=2)
    assert budget.paths == {} and "stopped comparing content" in budget.notes[0]


# --- in Blender, through the operators -------------------------------------------------------------

class _Short(AnimaticService):
    """An animatic that makes at most half a second, so a LOOP shot gets loop strips."""

    id, label = "animatic-short", "Short animatic"
    capabilities = Capabilities(first_frame=True, max_frames=12)


def _abs(path: str) -> Path:
    return Path(bpy.path.abspath(path))


def _shows_a_take(scene, frame: int, tmp_path: Path) -> bool:
    return framecode.read(render_frame(scene, frame, tmp_path / "frame.png")) is not None


def _missing_lines(scene, capfd) -> list[str]:
    capfd.readouterr()
    assert op(scene, "shotline_check_takes") == {'FINISHED'}
    return sorted(line for line in capfd.readouterr().out.splitlines() if "is missing" in line)


@pytest.fixture
def project(scene, tmp_path, monkeypatch):
    """A saved project with four generated shots: A has two takes, B loops a short take."""
    set_fps(scene, Fraction(24000, 1001))
    scene.render.resolution_x, scene.render.resolution_y = 160, 90
    a = add_shot(scene, "Qəmgin", 1, 24)
    b = add_shot(scene, "Певица", 25, 30, fit='LOOP')
    b.shotline.service = add_service(monkeypatch, _Short()).id
    c = add_shot(scene, "C", 55, 24)
    d = add_shot(scene, "D", 79, 24)
    generate(scene, [a, b, c, d])
    a.shotline.seed += 1  # another request: a second take, not the first one reused
    generate(scene, [a])
    for shot in (a, b, c, d):
        assert shot.shotline.status in {'PLACED', 'SHORT'}, shot.shotline.status_message
        for take in shot.shotline.takes:  # placement records the content Relink looks for
            assert take.content_key == media.content_key(_abs(take.filepath))
    assert len(a.shotline.takes) == 2 and a.shotline.active_take == 1
    assert shots.loop_strips(scene, b), "B's take is not looped: the test would not check loop strips"
    folder = tmp_path / "проект"
    folder.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "фильм.blend"))
    return scene.name, folder


def _open_copy(project, tmp_path):
    name, folder = project
    copy = tmp_path / "moved" / folder.name
    shutil.copytree(folder, copy)
    shutil.rmtree(folder)  # nothing may still point at the old place
    bpy.ops.wm.open_mainfile(filepath=str(copy / "фильм.blend"))
    scene = bpy.data.scenes[name]
    return scene, copy, {s.name: s for s in shots.shots(scene)}


def test_moving_the_project_folder_keeps_every_take_linked(project, tmp_path, capfd):
    scene, copy, by_name = _open_copy(project, tmp_path)
    for shot in by_name.values():
        strips = [shots.take_strip(scene, shot), *shots.loop_strips(scene, shot)]
        for owner in [*shot.shotline.takes, *strips]:
            assert owner.filepath.startswith("//shotline/"), owner.filepath
            assert _abs(owner.filepath).is_file() and copy in _abs(owner.filepath).parents
        assert _shows_a_take(scene, compat.span(shot)[0] + 5, tmp_path)
    assert _missing_lines(scene, capfd) == []


def test_check_and_relink_takes_that_were_renamed_moved_and_deleted(project, tmp_path, capfd):
    scene, copy, by_name = _open_copy(project, tmp_path)
    a, b, c = by_name["Qəmgin"], by_name["Певица"], by_name["C"]
    a_strip, b_strip = shots.take_strip(scene, a), shots.take_strip(scene, b)
    a_strip_file = a_strip.filepath
    b_strip.modifiers.new("Grade", 'BRIGHT_CONTRAST')
    b_strip.color_saturation = 0.9
    retiming = len(b_strip.retiming_keys), compat.span(b_strip), compat.content_frames(b_strip)

    renamed = _abs(a.shotline.takes[0].filepath)  # not the active take: the take strip shows take 2
    renamed.rename(renamed.with_name("лучший дубль.mp4"))
    moved = copy / "elsewhere" / "take_001.mp4"
    moved.parent.mkdir()
    os.rename(_abs(b.shotline.takes[0].filepath), moved)
    deleted = _abs(c.shotline.takes[0].filepath)
    deleted.unlink()
    # A's and B's old names with other content (D's take), in folders like theirs: never taken for them
    b_old = _abs(b.shotline.takes[0].filepath)
    for old in (renamed, b_old):
        decoy = copy / "old" / "shotline" / old.parent.name / old.name
        decoy.parent.mkdir(parents=True)
        shutil.copy(_abs(by_name["D"].shotline.takes[0].filepath), decoy)

    expected = sorted(f"Warning: {shot.name} take 1: {path} is missing"
                      for shot, path in ((a, renamed), (b, b_old), (c, deleted)))
    assert _missing_lines(scene, capfd) == expected
    assert not _shows_a_take(scene, compat.span(b)[0] + 2, tmp_path)

    capfd.readouterr()
    assert op(scene, "shotline_relink_takes") == {'FINISHED'}  # the .blend's folder and its parent
    out = capfd.readouterr().out
    assert "Relinked 2 of 3 missing take(s)" in out
    assert f"C take 1: {deleted} not found" in out

    name_a = media.safe_name(a.name)
    assert a.shotline.takes[0].filepath == f"//shotline/{name_a}/лучший дубль.mp4"
    assert a_strip.filepath == a_strip_file, "A's take strip shows take 2: it must not change"
    assert b.shotline.takes[0].filepath == "//elsewhere/take_001.mp4"
    for strip in (b_strip, *shots.loop_strips(scene, b)):
        assert strip.filepath == "//elsewhere/take_001.mp4"
    assert (len(b_strip.retiming_keys), compat.span(b_strip), compat.content_frames(b_strip)) == retiming
    assert b_strip.modifiers[0].name == "Grade" and b_strip.color_saturation == pytest.approx(0.9)
    assert _shows_a_take(scene, compat.span(b)[0] + 2, tmp_path)
    assert _shows_a_take(scene, compat.span(b)[1] - 2, tmp_path)  # in a loop strip

    assert _missing_lines(scene, capfd) == [f"Warning: C take 1: {deleted} is missing"]


def test_relink_reports_bad_input_clearly(scene, tmp_path, capfd):
    """No folder to search for an unsaved file, a folder that is not one, nothing missing."""
    shot = add_shot(scene, "shot", 1, 12)
    shot.shotline.takes.add().filepath = str(tmp_path / "gone" / "take_001.mp4")
    with pytest.raises(RuntimeError, match="Choose a folder to search"):
        op(scene, "shotline_relink_takes")
    with pytest.raises(RuntimeError, match="is not a folder"):
        op(scene, "shotline_relink_takes", directory=str(tmp_path / "nowhere"))
    assert op(scene, "shotline_relink_takes", directory=str(tmp_path)) == {'FINISHED'}
    assert "shot take 1: " in capfd.readouterr().out
    shot.shotline.takes.clear()
    assert op(scene, "shotline_relink_takes", directory=str(tmp_path)) == {'CANCELLED'}
    assert "No take is missing" in capfd.readouterr().out

import errno
import hashlib
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from addon import media
from addon.media import (
    atomic_write,
    content_key,
    is_inside,
    move_tree,
    next_take_path,
    partial_path,
    safe_name,
    shot_dir,
    stream_to_file,
)
from addon.services.base import Cancelled, JobControl


# -- safe_name -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "..", ".", "/", "\\", "../..", "\x00\x01", "___", "-._"])
def test_safe_name_never_empty_nor_a_path_component(text):
    name = safe_name(text)
    assert name == "untitled"


@pytest.mark.parametrize(
    "text",
    ["a/b", "a\\b", "../etc/passwd", "C:\\Windows", 'what?*:"<>|', "tab\there", "new\nline", " lead and trail. "],
)
def test_safe_name_has_no_separators_or_forbidden_characters(text):
    name = safe_name(text)
    assert name and not set(name) & set('/\\:*?"<>|\t\n ')
    assert not name.startswith(".") and not name.endswith(".")
    assert Path(name).name == name and name not in (".", "..")


def test_safe_name_keeps_readable_unicode():
    assert safe_name("Shot 12: Neon rain") == "Shot_12_Neon_rain"
    assert safe_name("夜の街") == "夜の街"
    assert safe_name("नमस्ते") == "नमस्ते"  # combining marks survive
    assert safe_name("Ночь — припев, дубль 2") == "Ночь_припев_дубль_2"
    composed = unicodedata.normalize("NFC", "Café")
    decomposed = unicodedata.normalize("NFD", "Café")
    assert composed != decomposed
    assert safe_name(composed) == safe_name(decomposed) == composed


# A shot's takes live in the folder safe_name gives it: a name that changes between sessions,
# processes or machines orphans every take already made. These are the names as released.
STABLE_NAMES = {
    "Intro / verse 1": "Intro_verse_1",
    "x" * 300 + "a": "x" * 55 + "-f5e724b7",
    "x" * 300 + "b": "x" * 55 + "-2cb994e1",
    "Café au lait " * 8: "Café_au_lait_" * 4 + "Caf-de5aec47",
}


def test_safe_name_is_stable_across_processes_and_normal_forms():
    for text, name in STABLE_NAMES.items():
        assert safe_name(text) == name
        assert safe_name(unicodedata.normalize("NFD", text)) == name  # as macOS hands file names back
    code = ("import json, sys, unicodedata; from addon.media import safe_name; "
            "print(json.dumps([safe_name(unicodedata.normalize(sys.argv[1], t)) for t in json.load(sys.stdin)]))")
    for seed, form in (("1", "NFC"), ("2", "NFD")):  # another process, another str hash seed
        run = subprocess.run([sys.executable, "-c", code, form], input=json.dumps(list(STABLE_NAMES)),
                             capture_output=True, text=True, timeout=60, cwd=Path(media.__file__).parent.parent,
                             env=dict(os.environ, PYTHONHASHSEED=seed), check=True)
        assert json.loads(run.stdout) == list(STABLE_NAMES.values())


@pytest.mark.parametrize("text, name", [("CON", "_CON"), ("con", "_con"), ("Nul.txt", "_Nul.txt"),
                                        ("lpt1", "_lpt1"), ("COM9", "_COM9"), ("console", "console")])
def test_safe_name_avoids_windows_device_names(text, name):
    assert safe_name(text) == name


def test_safe_name_cuts_long_names_but_keeps_them_distinct():
    a, b = safe_name("x" * 300 + "a"), safe_name("x" * 300 + "b")
    assert len(a) == len(b) == 64
    assert a != b


# -- layout ----------------------------------------------------------------------------------------------------


def test_shot_dir_is_one_safe_subfolder(tmp_path):
    assert shot_dir(tmp_path, "Shot 1/chorus") == tmp_path / "Shot_1_chorus"
    assert shot_dir(tmp_path, "..") == tmp_path / "untitled"


def test_take_numbering_never_overwrites(tmp_path):
    seen = set()
    for _ in range(5):
        path = next_take_path(tmp_path, "Shot A")
        assert not path.exists() and path not in seen
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"take")
        seen.add(path)
    assert sorted(p.name for p in seen) == [f"take_00{i}.mp4" for i in range(1, 6)]


def test_take_numbering_follows_the_highest_take_of_any_kind(tmp_path):
    folder = shot_dir(tmp_path, "s")
    assert next_take_path(tmp_path, "s") == folder / "take_001.mp4"
    folder.mkdir()
    (folder / "take_002.mov").write_bytes(b"")
    assert next_take_path(tmp_path, "s", ext="mkv") == folder / "take_003.mkv"
    (folder / "take_007.mp4.part").write_bytes(b"")  # a download in flight owns its number
    assert next_take_path(tmp_path, "s").name == "take_008.mp4"
    reserved = [folder / "take_011.mp4", tmp_path / "other" / "take_050.mp4"]  # promised to running jobs
    assert next_take_path(tmp_path, "s", reserved=reserved).name == "take_012.mp4"
    (folder / "notes.txt").write_bytes(b"")
    (folder / "take_x.mp4").write_bytes(b"")
    assert next_take_path(tmp_path, "s").name == "take_008.mp4"


def test_partial_path_is_a_sibling():
    dest = Path("/media/shot/take_001.mp4")
    assert partial_path(dest) == Path("/media/shot/take_001.mp4.part")


# -- atomic writes -----------------------------------------------------------------------------------------------


def test_atomic_write_renames_on_success(tmp_path):
    dest = tmp_path / "sub" / "take_001.mp4"
    with atomic_write(dest) as part:
        assert part == partial_path(dest)
        part.write_bytes(b"done")
        assert not dest.exists()
    assert dest.read_bytes() == b"done"
    assert os.listdir(dest.parent) == ["take_001.mp4"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), Cancelled(), KeyboardInterrupt()])
def test_atomic_write_leaves_nothing_on_error(tmp_path, error):
    dest = tmp_path / "take_001.mp4"
    with pytest.raises(type(error)):
        with atomic_write(dest) as part:
            part.write_bytes(b"half")
            raise error
    assert os.listdir(tmp_path) == []


def test_atomic_write_error_keeps_the_previous_file(tmp_path):
    dest = tmp_path / "cache.json"
    dest.write_bytes(b"old")
    with pytest.raises(ValueError):
        with atomic_write(dest) as part:
            part.write_bytes(b"new but broken")
            raise ValueError
    assert dest.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["cache.json"]


def test_stream_to_file_writes_and_reports_progress(tmp_path):
    reports = []
    ctl = JobControl(report=lambda stage, progress, message: reports.append((stage, progress)))
    dest = tmp_path / "take_001.mp4"
    n = stream_to_file((bytes([i]) * 1000 for i in range(10)), dest, ctl, total=10_000)
    assert n == 10_000 and dest.stat().st_size == 10_000
    assert reports[-1] == ("downloading", 1.0)
    assert all(stage == "downloading" for stage, _ in reports)
    assert [p for _, p in reports] == sorted(p for _, p in reports)
    assert os.listdir(tmp_path) == ["take_001.mp4"]


def test_stream_to_file_cancel_leaves_nothing(tmp_path):
    ctl = JobControl()

    def chunks():
        yield b"a" * 100
        ctl.cancel_event.set()  # the user cancels mid-download
        yield b"b" * 100
        yield b"c" * 100

    with pytest.raises(Cancelled):
        stream_to_file(chunks(), tmp_path / "take_001.mp4", ctl)
    assert os.listdir(tmp_path) == []


def test_stream_to_file_source_error_leaves_nothing(tmp_path):
    def chunks():
        yield b"a" * 100
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        stream_to_file(chunks(), tmp_path / "take_001.mp4")
    assert os.listdir(tmp_path) == []


def test_content_key_is_sha256_of_the_content(tmp_path):
    data = os.urandom(3 << 20)  # more than one read block
    (tmp_path / "a").write_bytes(data)
    (tmp_path / "b").write_bytes(data)
    (tmp_path / "c").write_bytes(data + b"!")
    assert content_key(tmp_path / "a") == hashlib.sha256(data).hexdigest() == content_key(tmp_path / "b")
    assert content_key(tmp_path / "c") != content_key(tmp_path / "a")


# -- is_inside -------------------------------------------------------------------------------------------------


def test_is_inside(tmp_path):
    root = tmp_path / "media"
    assert is_inside(root / "shot" / "take_001.mp4", root)
    assert is_inside(root, root)
    assert not is_inside(tmp_path / "media2" / "x", root)  # a shared prefix is not containment
    assert not is_inside(root / ".." / "elsewhere", root)
    assert not is_inside(tmp_path, root)


def test_is_inside_follows_symlinks(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    assert not is_inside(root / "link" / "x", root)


# -- move_tree -------------------------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_move_tree_moves_everything_and_maps_old_to_new(tmp_path):
    src, dst = tmp_path / "tmp_media", tmp_path / "project" / "shotline_media"
    for rel in ["Intro/take_001.mp4", "Intro/take_002.mp4", "Verse/take_001.mp4", "Verse/cache/frame.png"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(rel.encode())
    mapping = move_tree(src, dst)
    assert mapping == {src / rel: dst / rel for rel in _files(dst)}
    assert len(mapping) == 4
    for old, new in mapping.items():
        assert not old.exists()
        assert new.read_bytes() == old.relative_to(src).as_posix().encode()
    assert src.is_dir() and list(src.iterdir()) == []  # emptied subfolders go, the root is the caller's


def test_move_tree_never_overwrites_and_reports_clashes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "Intro").mkdir(parents=True)
    (src / "Intro" / "take_001.mp4").write_bytes(b"new take")
    (src / "notes.txt").write_bytes(b"new notes")
    (dst / "Intro").mkdir(parents=True)
    (dst / "Intro" / "take_001.mp4").write_bytes(b"user's take")
    (dst / "Intro" / "take_002.mp4").write_bytes(b"user's second take")
    (dst / "notes.txt").write_bytes(b"user's notes")
    (dst / "notes_2.txt").write_bytes(b"user's other notes")

    mapping = move_tree(src, dst)

    assert mapping == {
        src / "Intro" / "take_001.mp4": dst / "Intro" / "take_003.mp4",
        src / "notes.txt": dst / "notes_3.txt",
    }
    assert _files(dst) == {
        "Intro/take_001.mp4": b"user's take",
        "Intro/take_002.mp4": b"user's second take",
        "Intro/take_003.mp4": b"new take",
        "notes.txt": b"user's notes",
        "notes_2.txt": b"user's other notes",
        "notes_3.txt": b"new notes",
    }


def test_move_tree_leaves_downloads_in_flight_and_foreign_files(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "Intro").mkdir(parents=True)
    (src / "Intro" / "take_001.mp4").write_bytes(b"done")
    (src / "Intro" / "take_002.mp4.part").write_bytes(b"half")
    (dst / "Other").mkdir(parents=True)
    (dst / "Other" / "keep.mov").write_bytes(b"foreign")

    mapping = move_tree(src, dst)

    assert list(mapping.values()) == [dst / "Intro" / "take_001.mp4"]
    assert (src / "Intro" / "take_002.mp4.part").read_bytes() == b"half"  # its folder is not empty: kept
    assert (dst / "Other" / "keep.mov").read_bytes() == b"foreign"


def test_move_tree_across_devices_copies_then_removes(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "Intro").mkdir(parents=True)
    (src / "Intro" / "take_001.mp4").write_bytes(b"clip")

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(media.os, "rename", cross_device)
    mapping = move_tree(src, dst)
    assert mapping == {src / "Intro" / "take_001.mp4": dst / "Intro" / "take_001.mp4"}
    assert _files(dst) == {"Intro/take_001.mp4": b"clip"}
    assert _files(src) == {}


def test_move_tree_edge_cases(tmp_path):
    src = tmp_path / "src"
    assert move_tree(tmp_path / "missing", tmp_path / "dst") == {}
    src.mkdir()
    (src / "a.mp4").write_bytes(b"a")
    assert move_tree(src, src) == {}
    with pytest.raises(ValueError):
        move_tree(src, src / "inner")
    assert (src / "a.mp4").read_bytes() == b"a"


def test_move_tree_keeps_the_callers_spelling_of_paths(tmp_path):
    real = tmp_path / "real"
    (real / "s").mkdir(parents=True)
    (real / "s" / "take_001.mp4").write_bytes(b"x")
    alias = tmp_path / "alias"
    alias.symlink_to(real)  # like /tmp -> /private/tmp on macOS
    mapping = move_tree(alias, tmp_path / "dst")
    assert list(mapping) == [alias / "s" / "take_001.mp4"]



def test_move_tree_is_all_or_nothing(tmp_path, monkeypatch):
    """A file that cannot be moved (a full or read-only disk) puts back the ones moved before it."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for shot in ("A", "B"):
        (src / shot).mkdir(parents=True)
        (src / shot / "take_001.mp4").write_bytes(shot.encode())
    real_move = media.move_file
    calls = []

    def second_fails(a, b):
        calls.append(a)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_move(a, b)

    monkeypatch.setattr(media, "move_file", second_fails)
    with pytest.raises(OSError, match="No space"):
        move_tree(src, dst)
    assert _files(src) == {"A/take_001.mp4": b"A", "B/take_001.mp4": b"B"}
    assert not dst.exists() or not any(p.is_file() for p in dst.rglob("*"))

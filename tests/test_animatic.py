"""The local animatic service: exact files, readable frame codes, text in any script, determinism,
cancel, failures, and all per-frame drawing in the child process."""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image, ImageDraw

from shotline.addon import encode, framecode
from shotline.addon.animatic import NOTDEF, Animatic, Fonts, _truncate, _wrap, glyph
from shotline.addon.services.animatic import AnimaticService
from shotline.addon.services.base import Cancelled, JobControl, Request, ServiceError

# (fps, frames, width, height, with a reference image)
CLIPS = [
    (Fraction(24), 24, 160, 90, False),
    (Fraction(25), 25, 160, 90, True),
    (Fraction(30), 30, 320, 180, False),
    (Fraction(24000, 1001), 37, 160, 90, False),
    (Fraction(30000, 1001), 31, 90, 160, False),
    (Fraction(50), 12, 1920, 1080, False),
]


# A director's text: Azerbaijani, Russian, Greek and typographic punctuation.
WORLD_TEXT = {"shot_name": "Qəmgin mahnı — «Ελπίδα»",
              "prompt": "Певица идёт по ночному городу… “Qəmgin mahnı” — Ελπίδα στον δρόμο, şğçöü"}
# One script each: within one, no two characters may be drawn alike (across scripts о and ο may).
SCRIPTS = {"Azerbaijani": "Qəmgin mahnı şğçöü", "Russian": "Певица идёт по ночному городу",
           "Greek": "Ελπίδα στον δρόμο", "punctuation": "— « » “ ” … ,"}


@pytest.fixture(scope="module")
def blender_fonts() -> list[str]:
    """The fonts the animatic child draws with, found as the child finds them."""
    spec = importlib.util.spec_from_file_location("animatic_child", encode.CHILD_SCRIPT)
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    return child.blender_fonts()


@pytest.fixture(autouse=True)
def default_encoder():
    encode.configure(None)
    yield
    encode.configure(None)


def make_reference(path: Path) -> Path:
    """A 400x300 picture with structure everywhere, so any crop of it is recognisable."""
    y, x = np.mgrid[0:300, 0:400]
    rgb = np.dstack([x * 255 // 399, y * 255 // 299, (x + y) % 64 * 4]).astype(np.uint8)
    image = Image.fromarray(rgb)
    pen = ImageDraw.Draw(image)
    for k in range(8):
        pen.ellipse((k * 50, k * 30, k * 50 + 40, k * 30 + 40), fill=(255, 255 - k * 30, 0))
    image.save(path)
    return path


def request_for(fps: Fraction, frames: int, width: int, height: int, reference: str = "", seed: int = 3,
                **text: str) -> Request:
    """`text`: shot_name and prompt, if not the default ones."""
    text = {"shot_name": f"sh{frames:03d}", "prompt": "A neon rider crosses the bridge of the far future", **text}
    return Request(**text, frames=frames, fps=fps, width=width, height=height, seed=seed, reference_image=reference)


def mp4_timing(path: Path) -> tuple[Fraction, int, int, int]:
    """Exact (fps, frames, width, height) of the single video track, read from the MP4 boxes."""
    data = path.read_bytes()

    def find(names: list[str], start: int = 0, end: int | None = None) -> tuple[int, int]:
        end = len(data) if end is None else end
        while start + 8 <= end:
            size, kind = struct.unpack(">I4s", data[start:start + 8])
            header = 8
            if size == 1:
                size, header = struct.unpack(">Q", data[start + 8:start + 16])[0], 16
            elif size == 0:
                size = end - start
            if kind.decode("latin-1") == names[0]:
                inner = (start + header, start + size)
                return inner if len(names) == 1 else find(names[1:], *inner)
            start += size
        raise AssertionError(f"no {names[0]} box")

    mdhd, _ = find(["moov", "trak", "mdia", "mdhd"])
    timescale = struct.unpack(">I", data[mdhd + 12:mdhd + 16] if data[mdhd] == 0 else data[mdhd + 20:mdhd + 24])[0]
    stts, _ = find(["moov", "trak", "mdia", "minf", "stbl", "stts"])
    count = struct.unpack(">I", data[stts + 4:stts + 8])[0]
    entries = [struct.unpack(">II", data[stts + 8 + 8 * k:stts + 16 + 8 * k]) for k in range(count)]
    assert len({delta for _, delta in entries}) == 1, f"frame durations vary: {entries}"
    tkhd, _ = find(["moov", "trak", "tkhd"])
    at = tkhd + (76 if data[tkhd] == 0 else 88)
    width, height = struct.unpack(">II", data[at:at + 8])
    return Fraction(timescale, entries[0][1]), sum(n for n, _ in entries), width >> 16, height >> 16


def decode_indices(path: Path, frames: int, width: int, height: int, folder: Path) -> list[int | None]:
    """Render every frame of the clip through Blender's sequencer, scaled to fit width x height, and
    read the frame code of each."""
    scene = bpy.data.scenes.new("decode")
    try:
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        scene.frame_start, scene.frame_end = 1, frames
        scene.view_settings.view_transform = 'Standard'
        render.image_settings.file_format = 'PNG'
        render.filepath = str(folder / "f_######")
        editor = scene.sequence_editor_create()
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences
        strips.new_movie("clip", str(path), 1, 1, fit_method='FIT')
        with bpy.context.temp_override(scene=scene):
            bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.data.scenes.remove(scene)
    return [framecode.read(Image.open(folder / f"f_{n:06d}.png")) for n in range(1, frames + 1)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Every clip of CLIPS made through the service, two at a time (its concurrency), with its request."""
    folder = tmp_path_factory.mktemp("animatic")
    reference = str(make_reference(folder / "reference.png"))
    service = AnimaticService(staging_root=folder)

    def make(spec):
        fps, frames, width, height, with_reference = spec
        request = request_for(fps, frames, width, height, reference if with_reference else "")
        ctl = JobControl()
        started = time.perf_counter()
        remote = service.submit(request, ctl)
        assert service.poll(remote, ctl).done
        result = service.fetch(remote, folder / f"clip_{frames}.mp4", ctl)
        return request, result, time.perf_counter() - started

    with ThreadPoolExecutor(service.max_concurrency) as pool:
        made = list(pool.map(make, CLIPS))
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith("shotline-animatic-")]
    assert leftovers == [], "staging folders must be gone after fetch"
    return {spec[0]: entry for spec, entry in zip(CLIPS, made)}


@pytest.mark.parametrize("fps", [spec[0] for spec in CLIPS], ids=str)
def test_file_has_exact_rate_count_and_size(clips, fps):
    request, result, _ = clips[fps]
    assert (result.fps, result.frames, result.width, result.height) == (fps, request.frames, request.width,
                                                                          request.height)
    assert mp4_timing(result.path) == (fps, request.frames, request.width, request.height)
    clip = bpy.data.movieclips.load(str(result.path))
    try:
        assert clip.fps == pytest.approx(float(fps), rel=1e-6)
        assert clip.frame_duration == request.frames
        assert tuple(clip.size) == (request.width, request.height)
    finally:
        bpy.data.movieclips.remove(clip)


@pytest.mark.parametrize("fps", [spec[0] for spec in CLIPS], ids=str)
def test_every_frame_carries_its_index(clips, fps, tmp_path):
    request, result, _ = clips[fps]
    indices = decode_indices(result.path, request.frames, request.width, request.height, tmp_path)
    assert indices == list(range(request.frames))


@pytest.mark.parametrize("fps,shown_size", [(Fraction(30), (160, 90)), (Fraction(50), (320, 180)),
                                             (Fraction(50), (160, 90))], ids=str)
def test_frame_code_reads_when_the_sequencer_scales_the_clip_down(clips, fps, shown_size, tmp_path):
    """The small code after H.264 and the sequencer's scaling, down to a 160x90 render."""
    request, result, _ = clips[fps]
    assert decode_indices(result.path, request.frames, *shown_size, tmp_path) == list(range(request.frames))


def test_decoded_frames_look_like_the_drawn_ones(clips, tmp_path, blender_fonts):
    request, result, _ = clips[Fraction(30)]
    decode_indices(result.path, request.frames, request.width, request.height, tmp_path)
    painter = Animatic(request, blender_fonts)
    for index in (0, 17, request.frames - 1):
        shown = np.asarray(Image.open(tmp_path / f"f_{index + 1:06d}.png").convert("RGB"), dtype=np.float32)
        drawn = np.asarray(painter.frame(index), dtype=np.float32)
        assert np.abs(shown - drawn).mean() < 6.0  # colours survive (no view transform, no shift)


def test_reference_clip_pans_across_the_reference(clips, tmp_path):
    request, result, _ = clips[Fraction(25)]
    assert request.reference_image
    decode_indices(result.path, request.frames, request.width, request.height, tmp_path)
    first = np.asarray(Image.open(tmp_path / "f_000001.png").convert("RGB"), dtype=np.float32)
    last = np.asarray(Image.open(tmp_path / f"f_{request.frames:06d}.png").convert("RGB"), dtype=np.float32)
    # Right half, middle band: clear of the name, caption and code. The first frame is the centred crop.
    band = (slice(request.height // 3, request.height * 2 // 3), slice(request.width // 2, request.width))
    reference = Image.open(request.reference_image)
    crop_height = reference.width * request.height / request.width
    top = (reference.height - crop_height) / 2
    expected = np.asarray(reference.convert("RGB").resize((request.width, request.height), Image.Resampling.BILINEAR,
                                                          box=(0, top, reference.width, top + crop_height)),
                          dtype=np.float32)
    assert np.abs(first[band] - expected[band]).mean() < 8.0
    assert np.abs(last[band] - first[band]).mean() > 10.0  # it moved


@pytest.mark.parametrize("text", [{}, WORLD_TEXT], ids=["latin", "world"])
def test_same_seed_same_frames_other_seed_other_frames(tmp_path, blender_fonts, text):
    reference = str(make_reference(tmp_path / "reference.png"))
    for ref in ("", reference):
        base = request_for(Fraction(24), 48, 320, 180, ref, seed=11, **text)
        one, two = Animatic(base, blender_fonts), Animatic(base, blender_fonts)
        other = Animatic(request_for(Fraction(24), 48, 320, 180, ref, seed=12, **text), blender_fonts)
        for index in (0, 23, 47):
            frame = np.asarray(one.frame(index))
            assert np.array_equal(frame, np.asarray(two.frame(index)))
            if not ref or index:  # the first frame of a reference clip is the reference, whatever the seed
                assert not np.array_equal(frame, np.asarray(other.frame(index)))
            assert framecode.read(frame) == index
        assert not np.array_equal(np.asarray(one.frame(0)), np.asarray(one.frame(47)))  # it moves


def test_the_child_draws_any_script_with_blender_fonts(tmp_path, blender_fonts):
    """Through the service and the real child: the shot name and prompt in the decoded clip are the
    text drawn with Blender's fonts (every character a real glyph), not Pillow's built-in ASCII font."""
    request = request_for(Fraction(24), 2, 640, 360, **WORLD_TEXT)
    service = AnimaticService(staging_root=tmp_path)
    ctl = JobControl()
    result = service.fetch(service.submit(request, ctl), tmp_path / "clip.mp4", ctl)
    assert decode_indices(result.path, request.frames, request.width, request.height, tmp_path) == [0, 1]
    shown = np.asarray(Image.open(tmp_path / "f_000001.png").convert("RGB"), dtype=np.float32)

    painter = Animatic(request, blender_fonts)
    for text in WORLD_TEXT.values():
        for font, run in painter.fonts.at(40).runs(painter.fonts.clean(text)):
            for char in set(run) - {" "}:
                assert glyph(font, char) != glyph(font, NOTDEF), char
    drawn = np.asarray(painter.frame(0), dtype=np.float32)
    latin_only = np.asarray(Animatic(request).frame(0), dtype=np.float32)
    text_area = np.abs(drawn - latin_only).max(axis=2) > 0  # where the fonts make a difference
    assert text_area.mean() > 0.05
    near = np.abs(shown - drawn)[text_area].mean()
    far = np.abs(shown - latin_only)[text_area].mean()
    assert near < 10.0 and far > 3 * near, (near, far)


def test_blender_fonts_give_each_character_a_glyph_of_its_own(blender_fonts):
    """The fonts Blender ships (WOFF2, read by the FreeType in Pillow's wheels) draw every character
    of these scripts with a real glyph: not its font's .notdef box, and within a script no two alike
    (boxes would all be the same)."""
    assert Path(blender_fonts[0]).name == "Inter.woff2"
    assert not [path for path in blender_fonts if "lastresort" in path.lower()]
    fonts = Fonts(blender_fonts)
    assert fonts.primary == 0  # Inter was read
    face = fonts.at(40)
    for script, text in SCRIPTS.items():
        glyphs = {}
        for char in set(text) - {" "}:
            [(font, run)] = face.runs(char)
            glyphs[char] = glyph(font, char)
            assert glyphs[char] != glyph(font, NOTDEF), (script, char)
        assert len(set(glyphs.values())) == len(glyphs), script


def test_text_is_composed_and_never_drawn_as_boxes(tmp_path, blender_fonts):
    fonts = Fonts(blender_fonts)
    assert fonts.clean("Qe\u0301\u0259") == "Q\u00e9\u0259"  # a letter and its accent: the composed glyph
    assert fonts.clean("a\U000E0001\u0378b") == "a\ufffdb"  # a stray tag character dropped, an unassigned one shown
    # No usable font (missing, or unreadable): Pillow's built-in font, which has ASCII only. A character
    # it lacks becomes ?, a mark or format character it lacks is dropped.
    broken = tmp_path / "Inter.woff2"
    broken.write_bytes(b"not a font")
    fallback = Fonts([str(broken), str(tmp_path / "missing.ttf")])
    assert fallback.primary == 2  # the built-in font
    assert fallback.clean("Qəmgin — Певица e\u0301 \u2764\ufe0f") == "Q?mgin ? ?????? ? ?"
    painter = Animatic(request_for(Fraction(24), 1, 320, 180, **WORLD_TEXT), [str(broken)])
    assert framecode.read(painter.frame(0)) == 0


@pytest.mark.parametrize("word", ["Qəmginmahnıgecəyarısışğçöü" * 3, "Певицаидётпоночномугороду" * 3,
                                  "Ελπίδαστονδρόμο" * 4, "q\u0307\u04d9\u0304" * 30, "東京の夜" * 20])
def test_long_words_without_spaces_wrap_and_truncate_within_the_width(blender_fonts, word):
    face = Fonts(blender_fonts).at(30)
    lines = _wrap(word, face, 150)
    assert len(lines) > 2 and "".join(lines) == word
    assert all(face.getlength(line) <= 150 for line in lines)
    assert not [line for line in lines if unicodedata.category(line[0]).startswith("M")]  # marks stay with a letter
    short = _truncate(word, face, 150)
    assert short.endswith("…") and word.startswith(short[:-1]) and face.getlength(short) <= 150


def test_service_description():
    service = AnimaticService()
    assert (service.id, service.label, service.needs_network, service.max_concurrency) == (
        "animatic", "Animatic (local)", False, 2)
    caps = service.capabilities
    assert caps.text_to_video and caps.first_frame and caps.durations == () and caps.fps == ()
    assert service.poll_interval <= 0.5


def test_bad_requests_and_ids(tmp_path):
    service = AnimaticService(staging_root=tmp_path)
    ctl = JobControl()
    for bad in (request_for(Fraction(24), 10, 161, 90), request_for(Fraction(24), 0, 160, 90),
                request_for(Fraction(24), 10, 160, 90, str(tmp_path / "missing.png"))):
        with pytest.raises(ServiceError):
            service.submit(bad, ctl)
    for remote in ("", "../etc", "shotline-animatic-../../x", str(tmp_path)):
        with pytest.raises(ServiceError):
            service.poll(remote, ctl)
        service.cancel(remote)  # never raises
    with pytest.raises(ServiceError, match="gone"):
        service.poll("shotline-animatic-nothere", ctl)
    assert list(tmp_path.iterdir()) == []


def test_cancel_removes_a_staged_clip(tmp_path):
    service = AnimaticService(staging_root=tmp_path)
    ctl = JobControl()
    remote = service.submit(request_for(Fraction(24), 6, 160, 90), ctl)
    assert (tmp_path / remote).is_dir()
    service.cancel(remote)
    assert list(tmp_path.iterdir()) == []


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(entry.name)
        except OSError:
            continue
    return found


def cancel_in(phase: str, frames: int, width: int, height: int, tmp_path: Path, monkeypatch) -> None:
    """Submit through the service, cancel once the child reports `phase`; the child must die at once
    and leave nothing: no staging folder, no scratch folder (frames, request), no process."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the child's scratch folder goes here
    (tmp_path / "tmp").mkdir()
    (tmp_path / "staging").mkdir()
    service = AnimaticService(staging_root=tmp_path / "staging")
    ctl = JobControl()
    seen, cancelled_at = [], []

    def report(stage, progress, message):
        seen.append(message)
        if message == phase and not cancelled_at:
            cancelled_at.append(time.perf_counter())
            ctl.cancel_event.set()

    ctl.report = report
    with pytest.raises(Cancelled):
        service.submit(request_for(Fraction(24), frames, width, height), ctl)
    assert cancelled_at, f"never reached {phase}: {seen}"
    assert time.perf_counter() - cancelled_at[0] < 3.0
    assert list((tmp_path / "staging").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    if sys.platform.startswith("linux"):
        assert _processes_mentioning(str(tmp_path)) == []


def test_cancel_while_drawing(tmp_path, monkeypatch):
    cancel_in("drawing", 400, 160, 90, tmp_path, monkeypatch)


def test_cancel_mid_encode_kills_the_child_and_leaves_nothing(tmp_path, monkeypatch):
    cancel_in("encoding", 600, 320, 180, tmp_path, monkeypatch)  # about 1.5 s of encoding


def test_no_drawing_in_the_parent_process(tmp_path, monkeypatch):
    """Pillow's drawing holds the GIL for tens of ms: none of it may run in Blender's process.
    The worker only relays the child's progress: drawing, then encoding, never going back."""
    import PIL.ImageDraw

    calls = []

    def spy(name):
        def record(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called in the parent process")
        return record

    monkeypatch.setattr(Animatic, "__init__", spy("Animatic"))
    monkeypatch.setattr(Animatic, "frame", spy("Animatic.frame"))
    monkeypatch.setattr(framecode, "draw", spy("framecode.draw"))
    monkeypatch.setattr(PIL.ImageDraw.ImageDraw, "text", spy("ImageDraw.text"))
    service = AnimaticService(staging_root=tmp_path)
    ctl = JobControl()
    progress = []
    ctl.report = lambda stage, fraction, message: progress.append((fraction, message))
    reference = str(make_reference(tmp_path / "reference.png"))
    for ref in ("", reference):
        progress.clear()
        remote = service.submit(request_for(Fraction(24), 96, 160, 90, ref), ctl)
        result = service.fetch(remote, tmp_path / "clip.mp4", ctl)
        assert mp4_timing(result.path) == (Fraction(24), 96, 160, 90)
        assert {message for _, message in progress} == {"drawing", "encoding"}, progress
        fractions = [fraction for fraction, _ in progress]
        assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] <= 1.0
        assert [message for _, message in progress].index("encoding") > 0  # drawing comes first
    assert calls == []


def test_the_child_needs_only_the_paths_it_is_given(tmp_path):
    """In Blender, a `--factory-startup` child has neither the add-on nor the extension wheels (Pillow)
    on sys.path: it imports them from the folders the parent passes. An isolated Python with no
    site-packages shows it works."""
    paths = encode.import_paths()
    import PIL

    assert paths == [encode.ADDON_ROOT, str(Path(PIL.__file__).parent.parent)]
    assert (Path(encode.ADDON_ROOT) / "addon" / "__init__.py").is_file()
    encode.configure([sys.executable, "-I", "-S", encode.CHILD_SCRIPT])
    output = tmp_path / "clip.mp4"
    encode.make_clip(request_for(Fraction(25), 5, 160, 90), output, JobControl())
    assert mp4_timing(output) == (Fraction(25), 5, 160, 90)


def test_failing_child_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the child's scratch folder goes here
    (tmp_path / "tmp").mkdir()
    output = tmp_path / "clip.mp4"
    request = request_for(Fraction(24), 1, 160, 90)
    ctl = JobControl()

    encode.configure([sys.executable, "-c", "import sys; print('starting'); "
                      "sys.stderr.write('no H.264 encoder in this build\\n'); sys.exit(3)"])
    with pytest.raises(ServiceError) as failure:
        encode.make_clip(request, output, ctl)
    assert "exit code 3" in str(failure.value) and "no H.264 encoder in this build" in str(failure.value)

    encode.configure([sys.executable, "-c", "print('shotline-done')"])  # exits 0 and writes nothing
    with pytest.raises(ServiceError, match="wrote no video file"):
        encode.make_clip(request, output, ctl)

    encode.configure([str(tmp_path / "no-such-blender")])
    with pytest.raises(ServiceError, match="Cannot start the animatic process"):
        encode.make_clip(request, output, ctl)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []

    # Through the service: the same message, and no staging folder left behind.
    service = AnimaticService(staging_root=tmp_path / "staging")
    (tmp_path / "staging").mkdir()
    with pytest.raises(ServiceError, match="Cannot start the animatic process"):
        service.submit(request_for(Fraction(24), 4, 160, 90), ctl)
    assert list((tmp_path / "staging").iterdir()) == []

    # The real child, failing while drawing: the reference image is not a picture.
    encode.configure(None)
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    with pytest.raises(ServiceError, match="Cannot read the reference image broken.png"):
        service.submit(request_for(Fraction(24), 4, 160, 90, str(broken)), ctl)
    assert list((tmp_path / "staging").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_configure_for_blender(monkeypatch):
    from types import SimpleNamespace

    from shotline.addon.blend import encoder

    default = encode.command_prefix()
    assert default == [sys.executable, encode.CHILD_SCRIPT]
    assert Path(encode.CHILD_SCRIPT).is_file()
    encoder.configure_for_blender()  # the bpy module has no binary: the default stays
    assert encode.command_prefix() == default
    monkeypatch.setattr(encoder, "bpy", SimpleNamespace(app=SimpleNamespace(binary_path="/opt/blender/blender")))
    encoder.configure_for_blender()
    prefix = encode.command_prefix()
    assert prefix[0] == "/opt/blender/blender" and "-b" in prefix and "--factory-startup" in prefix
    assert prefix[prefix.index("--python") + 1] == encode.CHILD_SCRIPT and prefix[-1] == "--"


def test_scratch_folders_a_killed_blender_left_are_removed():
    stale = Path(tempfile.mkdtemp(prefix=encode.SCRATCH_PREFIX))
    (stale / "frames").mkdir()
    (stale / "frames" / "000000.jpg").write_bytes(b"frame")
    fresh = Path(tempfile.mkdtemp(prefix=encode.SCRATCH_PREFIX))
    day_ago = time.time() - 25 * 3600
    os.utime(stale, (day_ago, day_ago))
    try:
        assert encode.remove_stale_scratch() >= 1
        assert not stale.exists() and fresh.is_dir()
    finally:
        shutil.rmtree(fresh, ignore_errors=True)

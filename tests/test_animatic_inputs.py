"""The animatic takes every input a cloud service takes: a last-frame image, reference images, a
source video (restyled, in time) and audio (a mouth that follows its loudness). Checked on the
decoded clips, made by the real child, and once through the Generate operator on a shot."""

from __future__ import annotations

import itertools
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shotline.addon import encode, framecode
from shotline.addon.animatic import Animatic, frame_loudness, mouth_opening, source_frame_numbers
from shotline.addon.services.animatic import AnimaticService
from shotline.addon.services.base import JobControl, Request, ServiceError
from test_animatic import blender_fonts, decode_indices, default_encoder, mp4_timing  # noqa: F401 (fixtures)
from vse import add_shot, generate, render_frame, set_fps

SIZE = (320, 180)
SECOND_COLOURS = [(220, 40, 40), (40, 200, 40), (40, 60, 220)]  # the source video: one colour a second
THUMB_COLOURS = [(230, 30, 30), (30, 200, 30), (30, 30, 230), (240, 220, 20)]
# Right half, middle band: clear of the name, caption, thumbnails, mouth and frame code.
BAND = (slice(SIZE[1] // 3, SIZE[1] * 2 // 3), slice(SIZE[0] // 2, SIZE[0]))


def picture(path: Path, kind: int) -> Path:
    """A 400x300 still with structure everywhere (so a wrong crop shows); `kind` 0 and 1 differ."""
    y, x = np.mgrid[0:300, 0:400]
    channels = [x * 255 // 399, y * 255 // 299, (x + y) % 64 * 4]
    image = Image.fromarray(np.dstack(channels[::-1] if kind else channels).astype(np.uint8))
    pen = ImageDraw.Draw(image)
    for k in range(8):
        box = (k * 50, (7 - k if kind else k) * 30, k * 50 + 40, (7 - k if kind else k) * 30 + 40)
        pen.ellipse(box, fill=(255, 255 - k * 30, 0) if kind else (0, 80 + k * 20, 255))
    image.save(path)
    return path


def cover(path: Path, size=SIZE) -> np.ndarray:
    """The still filling `size`: its centred crop, scaled."""
    with Image.open(path) as image:
        crop_h = image.width * size[1] / size[0]
        top = (image.height - crop_h) / 2
        fitted = image.convert("RGB").resize(size, Image.Resampling.BILINEAR, box=(0, top, image.width, top + crop_h))
    return np.asarray(fitted, dtype=np.float32)


def write_wav(path: Path, silent: float, loud: float, rate: int = 48000) -> Path:
    """Mono 16-bit: `silent` seconds of silence, then `loud` seconds of a 440 Hz tone at half scale."""
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(loud * rate)) / rate)
    samples = np.concatenate([np.zeros(int(silent * rate)), tone])
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The input files: two stills, four solid reference stills, a 25 fps source video (red, green,
    blue seconds, 4:3) and a WAV, silent for a second, then loud."""
    folder = tmp_path_factory.mktemp("inputs")
    frames = folder / "source frames"
    frames.mkdir()
    for index in range(75):
        Image.new("RGB", (200, 150), SECOND_COLOURS[index // 25]).save(frames / f"{index:04d}.png")
    source = folder / "source ə.mp4"  # a director's file name
    encode.frames_to_clip(frames, 75, Fraction(25), 200, 150, source, JobControl())
    references = []
    for k, colour in enumerate(THUMB_COLOURS):
        references.append(folder / f"cast_{k}.png")
        Image.new("RGB", (120, 160), colour).save(references[-1])
    return {"first": picture(folder / "first.png", 0), "last": picture(folder / "last.png", 1),
            "references": references, "source": source, "audio": write_wav(folder / "voice.wav", 1.0, 1.5)}


def request(frames: int, fps: Fraction, seed: int = 7, **files) -> Request:
    fields = {key: str(value) for key, value in files.items() if key != "reference_images"}
    return Request(shot_name="Qəmgin — sh010", prompt="Певица поёт", frames=frames, fps=fps, width=SIZE[0],
                   height=SIZE[1], seed=seed, reference_images=tuple(str(p) for p in files.get("reference_images", ())),
                   **fields)


def make(req: Request, folder: Path) -> list[np.ndarray]:
    """The clip made through the service, decoded: every frame as an RGB float array, its frame code checked."""
    service = AnimaticService(staging_root=folder)
    ctl = JobControl()
    result = service.fetch(service.submit(req, ctl), folder / "clip.mp4", ctl)
    assert mp4_timing(result.path) == (req.fps, req.frames, req.width, req.height)
    assert decode_indices(result.path, req.frames, req.width, req.height, folder) == list(range(req.frames))
    return [np.asarray(Image.open(folder / f"f_{n:06d}.png").convert("RGB"), dtype=np.float32)
            for n in range(1, req.frames + 1)]


def dominant(frame: np.ndarray) -> int:
    """Which of red, green, blue leads in the clear band."""
    return int(np.argmax(frame[BAND].reshape(-1, 3).mean(axis=0)))


def mouth_darkness(frame: np.ndarray, box) -> int:
    """Pixels of the open mouth's dark inside within the face plate."""
    left, top, right, bottom = box
    luma = frame[top:bottom, left:right] @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return int((luma < 40).sum())


def thumbnail_colours(frame: np.ndarray) -> list[int]:
    """The reference colours met left to right along the top right, each where it holds for a run of columns."""
    short = min(SIZE)
    row = frame[round(0.1 * short), SIZE[0] // 2:]
    labels = [next((k for k, colour in enumerate(THUMB_COLOURS) if np.abs(pixel - colour).max() < 25), None)
              for pixel in row]
    runs = [(label, len(list(group))) for label, group in itertools.groupby(labels)]
    return [label for label, length in runs if label is not None and length >= 0.1 * short]


def test_the_service_takes_every_input():
    caps = AnimaticService().capabilities
    assert (caps.first_frame, caps.last_frame, caps.video_to_video, caps.lip_sync) == (True, True, True, True)
    assert caps.reference_images == 4


def test_first_and_last_images_and_thumbnails(inputs, tmp_path):
    """Starts on the first image, ends on the last one (a dissolve over the final second), the four
    references in a row top right on every frame."""
    req = request(36, Fraction(24), reference_image=inputs["first"], last_frame_image=inputs["last"],
                  reference_images=inputs["references"])
    frames = make(req, tmp_path)
    first, last = cover(inputs["first"]), cover(inputs["last"])
    assert np.abs(first[BAND] - last[BAND]).mean() > 40  # the two stills are far apart
    assert np.abs(frames[0][BAND] - first[BAND]).mean() < 8
    assert np.abs(frames[-1][BAND] - last[BAND]).mean() < 8
    middle = frames[36 - 1 - 12]  # halfway through the dissolve: both show
    assert np.abs(middle[BAND] - last[BAND]).mean() > 12 and np.abs(middle[BAND] - frames[0][BAND]).mean() > 12
    for index in (0, 20, 35):
        assert thumbnail_colours(frames[index]) == [0, 1, 2, 3], index


def test_a_clip_shorter_than_a_second_dissolves_all_along_into_the_last_image(inputs, tmp_path):
    req = request(10, Fraction(25), last_frame_image=inputs["last"])
    frames = make(req, tmp_path)
    last = cover(inputs["last"])
    distances = [np.abs(frame[BAND] - last[BAND]).mean() for frame in frames]
    assert distances[-1] < 8 and distances[0] > 30
    assert distances == sorted(distances, reverse=True)


@pytest.mark.parametrize("fps,frames", [(Fraction(25), 90), (Fraction(30000, 1001), 100)], ids=str)
def test_source_video_is_restyled_in_time(inputs, tmp_path, fps, frames):
    """Output frame i shows the 25 fps source at time i / fps (red, green, blue seconds), its last
    frame held past its end, restyled."""
    frames_shown = make(request(frames, fps, source_video=inputs["source"]), tmp_path)
    for index in range(frames):
        second = min(int(index / fps), 2)  # exact: i / fps in Fractions
        assert dominant(frames_shown[index]) == second, (index, float(index / fps))
    shown = frames_shown[0][BAND].reshape(-1, 3).mean(axis=0)
    assert np.abs(shown - SECOND_COLOURS[0]).max() > 15  # tinted, not the source as it was


def test_the_mouth_follows_the_loudness(inputs, tmp_path, blender_fonts):
    """A WAV silent for a second, then loud: the mouth is shut for the first 24 frames at 24 fps,
    open from frame 24 on; a clip longer than the sound closes again."""
    req = request(72, Fraction(24), audio=inputs["audio"])
    frames = make(req, tmp_path)
    box = Animatic(req, blender_fonts, loudness=[0.0] * req.frames).mouth_box
    dark = [mouth_darkness(frame, box) for frame in frames]
    assert max(dark[:24]) < 10, dark[:24]
    assert min(dark[24:60]) > 300, dark[24:60]
    assert max(dark[60:]) < 10, dark[60:]  # the sound ended at 2.5 s


def test_loudness_windows_and_mouth_opening():
    rate = 48000
    samples = np.concatenate([np.zeros(rate), np.full(rate // 2, 0.5)])[:, None].repeat(2, axis=1)  # stereo
    levels = frame_loudness(samples, rate, Fraction(30000, 1001), 60)
    boundary = 29  # frame 29 spans 0.9676 .. 1.001 s: a little of the loud part
    assert levels[:boundary] == [0.0] * boundary
    assert 0 < levels[boundary] < 0.1 and levels[boundary + 1:44] == pytest.approx([0.5] * 14)
    assert 0.45 < levels[44] < 0.5 and levels[45:] == [0.0] * 15  # the sound ends within frame 44: silence after
    assert mouth_opening(0.0) == 0.0 and mouth_opening(1e-4) == 0.0 and mouth_opening(0.5) == 1.0
    assert 0 < mouth_opening(0.02) < 1


def test_source_frame_numbers_are_exact():
    assert source_frame_numbers(4, Fraction(30000, 1001), Fraction(25), 100) == [0, 0, 1, 2]
    numbers = source_frame_numbers(100, Fraction(30000, 1001), Fraction(25), 75)
    assert numbers[29:31] == [24, 25] and numbers[59:61] == [49, 50] and numbers[-1] == 74
    assert source_frame_numbers(3, Fraction(24), Fraction(24000, 1001), 1) == [0, 0, 0]


def test_every_input_is_deterministic_per_seed(inputs, tmp_path, blender_fonts):
    """The core drawing frames with every input at once, as the child does: the same seed gives the
    same pictures, another seed others; every frame code reads."""
    source = []
    for index in range(3):
        source.append(tmp_path / f"source_{index}.png")
        Image.new("RGB", SIZE, SECOND_COLOURS[index]).save(source[-1])
    files = {"last_frame_image": inputs["last"], "reference_images": inputs["references"],
             "source_video": inputs["source"], "audio": inputs["audio"]}
    loudness = [0.0, 0.3, 0.0, 0.1, 0.5, 0.0]

    def frames(seed: int) -> list[np.ndarray]:
        painter = Animatic(request(6, Fraction(24), seed, **files), blender_fonts,
                           [str(p) for p in source + source], loudness)
        return [np.asarray(painter.frame(index)) for index in range(6)]

    one, two, other = frames(5), frames(5), frames(6)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    assert not np.array_equal(one[0], other[0])
    assert [framecode.read(frame) for frame in one] == list(range(6))


def test_missing_and_unreadable_inputs_are_refused_with_their_names(inputs, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    service = AnimaticService(staging_root=staging)
    ctl = JobControl()
    not_a_picture = tmp_path / "brøken ə.png"
    not_a_picture.write_text("not a picture")
    not_a_wav = tmp_path / "noise.wav"
    not_a_wav.write_bytes(b"ID3" + bytes(100))
    refused_before = [  # by check(): no job is started
        ({"last_frame_image": tmp_path / "gone.png"}, "gone.png"),
        ({"reference_images": [inputs["references"][0], tmp_path / "missing cast.png"]}, "missing cast.png"),
        ({"source_video": tmp_path / "gone.mp4"}, "gone.mp4"),
        ({"audio": tmp_path / "gone.wav"}, "gone.wav"),
        ({"last_frame_image": not_a_picture}, "Cannot read the last-frame image brøken ə.png"),
        ({"reference_images": [not_a_picture]}, "Cannot read the reference image brøken ə.png"),
        ({"audio": not_a_wav}, "Cannot read the audio file noise.wav"),
        ({"reference_images": inputs["references"] + [inputs["first"]]}, "at most 4 reference images"),
    ]
    for files, message in refused_before:
        with pytest.raises(ServiceError, match=message):
            service.check(request(4, Fraction(24), **files))
        with pytest.raises(ServiceError, match=message):
            service.submit(request(4, Fraction(24), **files), ctl)
    junk_video = tmp_path / "junk.mp4"
    junk_video.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(200))
    junk_audio = tmp_path / "junk.ogg"
    junk_audio.write_bytes(b"OggS" + bytes(200))
    refused_by_the_child = [
        ({"source_video": junk_video}, "Blender cannot read the source video junk.mp4"),
        ({"audio": junk_audio}, "Blender cannot read the audio file junk.ogg"),
    ]
    for files, message in refused_by_the_child:
        service.check(request(4, Fraction(24), **files))
        with pytest.raises(ServiceError, match=message):
            service.submit(request(4, Fraction(24), **files), ctl)
    assert list(staging.iterdir()) == []


def test_generate_on_a_shot_with_every_input(scene, inputs, tmp_path, blender_fonts):
    """The director's way: a shot with a last-frame image, references, a source video and audio,
    Generate, and the timeline's own render shows it all on the shot's frames."""
    set_fps(scene, Fraction(24))
    shot = add_shot(scene, "Qəmgin", 1, 48)
    props = shot.shotline
    props.service, props.random_seed, props.seed = "animatic", False, 3
    props.last_frame_image = str(inputs["last"])
    for path in inputs["references"][:2]:
        props.references.add().filepath = str(path)
    props.source_video = str(inputs["source"])
    props.audio = str(inputs["audio"])
    generate(scene, [shot])
    assert props.status == 'PLACED', props.status_message

    shown = {index: render_frame(scene, 1 + index, tmp_path / f"shown_{index}.png").astype(np.float32)
             for index in (0, 12, 30, 47)}
    assert {index: framecode.read(frame) for index, frame in shown.items()} == {i: i for i in shown}
    assert dominant(shown[0]) == 0 and dominant(shown[12]) == 0  # the source's red first second
    assert np.abs(shown[47][BAND] - cover(inputs["last"])[BAND]).mean() < 10
    assert thumbnail_colours(shown[30]) == [0, 1]
    request_like = request(48, Fraction(24), audio=inputs["audio"], last_frame_image=inputs["last"])
    box = Animatic(request_like, blender_fonts, loudness=[0.0] * 48).mouth_box
    assert mouth_darkness(shown[12], box) < 10 and mouth_darkness(shown[30], box) > 300


def test_generate_reports_an_unreadable_source_video(scene, tmp_path):
    junk = tmp_path / "broken take.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(200))
    shot = add_shot(scene, "sh020", 1, 12)
    shot.shotline.source_video = str(junk)
    generate(scene, [shot])
    assert shot.shotline.status == 'FAILED'
    assert "Blender cannot read the source video broken take.mp4" in shot.shotline.status_message

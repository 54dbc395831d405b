"""The burned-in frame code: round trips at any scale, survives lossy noise, refuses garbage."""

import io

import numpy as np
import pytest
from PIL import Image

from addon import framecode

INDICES = [0, 1, 2, 255, 256, 1000, 12345, 40000, 65535]


def busy_background(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth random colour blobs: a picture with detail next to the code."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def lossy(image: Image.Image, quality: int, noise: float, seed: int = 0) -> np.ndarray:
    """JPEG at `quality`, then Gaussian noise of `noise` levels."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer), dtype=np.float32)
    noisy = decoded + np.random.default_rng(seed).normal(0, noise, decoded.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def cell_box(width: int, height: int, row: int, col: int) -> tuple[int, int, int, int]:
    left, top, cell = framecode._layout(width, height)
    return (round(left + col * cell), round(top + row * cell), round(left + (col + 1) * cell),
            round(top + (row + 1) * cell))


@pytest.mark.parametrize("size", [(160, 90), (320, 180), (1920, 1080), (90, 160), (100, 100), (64, 36)])
def test_round_trip(size):
    for index in INDICES:
        image = busy_background(*size, seed=index)
        framecode.draw(image, index)
        assert framecode.read(image) == index


@pytest.mark.parametrize("target", [(160, 90), (96, 54), (640, 360), (854, 480), (1920, 1080)])
def test_scaled_to_other_resolutions(target):
    for index in (0, 12345, 65535):
        image = busy_background(1280, 720, seed=index)
        framecode.draw(image, index)
        for method in (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS):
            assert framecode.read(image.resize(target, method)) == index, (target, method)


@pytest.mark.parametrize("quality,noise", [(60, 6.0), (25, 10.0), (10, 4.0)])
def test_survives_jpeg_and_noise(quality, noise):
    for size in [(160, 90), (640, 360)]:
        for index in INDICES:
            image = busy_background(*size, seed=index)
            framecode.draw(image, index)
            assert framecode.read(lossy(image, quality, noise, seed=index)) == index, (size, index)


def test_array_inputs():
    image = busy_background(320, 180)
    framecode.draw(image, 4242)
    rgb = np.asarray(image)
    assert framecode.read(rgb) == 4242
    rgba_float = np.dstack([rgb / 255.0, np.ones(rgb.shape[:2])]).astype(np.float32)  # like bpy pixels, top row first
    assert framecode.read(rgba_float) == 4242
    assert framecode.read(np.asarray(image.convert("L"))) == 4242
    assert framecode.read(image.convert("RGBA")) == 4242


def test_out_of_range_index():
    image = Image.new("RGB", (160, 90))
    for index in (-1, 65536):
        with pytest.raises(ValueError):
            framecode.draw(image, index)


def test_garbage_reads_none():
    rng = np.random.default_rng(7)
    candidates = [
        np.zeros((90, 160, 3), np.uint8),
        np.full((90, 160, 3), 255, np.uint8),
        np.full((90, 160, 3), 128, np.uint8),
        np.tile(np.linspace(0, 255, 160, dtype=np.uint8)[None, :, None], (90, 1, 3)),
    ]
    candidates += [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(200)]
    candidates += [np.asarray(busy_background(160, 90, seed=s)) for s in range(200)]
    # Random black and white blocks of the code's cell size: the hardest kind of noise.
    side = round(framecode.CELL * 90)
    for _ in range(500):
        blocks = rng.integers(0, 2, (90 // side + 1, 160 // side + 1, 1), dtype=np.uint8) * 255
        candidates.append(np.repeat(np.repeat(blocks, side, 0), side, 1)[:90, :160].repeat(3, 2))
    assert [framecode.read(c) for c in candidates].count(None) == len(candidates)


def test_damaged_code_reads_none():
    width, height = 320, 180
    clean = busy_background(width, height)
    framecode.draw(clean, 31337)
    assert framecode.read(clean) == 31337
    inverted = Image.fromarray(255 - np.asarray(clean))
    assert framecode.read(inverted) is None
    for row, col in framecode._DATA_CELLS:
        pixels = np.asarray(clean).copy()
        x0, y0, x1, y1 = cell_box(width, height, row, col)
        flipped = pixels.copy()
        flipped[y0:y1, x0:x1] = 255 - flipped[y0:y1, x0:x1]
        assert framecode.read(flipped) is None, ("flipped", row, col)
        pixels[y0:y1, x0:x1] = 128
        assert framecode.read(pixels) is None, ("grey", row, col)


def test_plate_is_small():
    """An unobtrusive corner mark: about 3% of a 16:9 picture, under a fifth of its width."""
    for size in [(160, 90), (320, 180), (1920, 1080)]:
        left, top, right, bottom = framecode.plate_box(*size)
        assert (right - left) * (bottom - top) <= 0.031 * size[0] * size[1], size
        assert right - left <= 0.19 * size[0], size


def test_plate_box_covers_the_code():
    for size in [(160, 90), (1920, 1080), (90, 160)]:
        left, top, right, bottom = framecode.plate_box(*size)
        assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
        image = Image.new("RGB", size, (200, 30, 90))
        framecode.draw(image, 77)
        pixels = np.asarray(image)
        outside = np.ones(size[::-1], bool)
        outside[top:bottom, left:right] = False
        assert (pixels[outside] == (200, 30, 90)).all()

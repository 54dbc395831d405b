"""A machine-readable frame index burned into the bottom-left corner of a picture.

The code is a 4 x 9 grid of black and white cells on a black plate. Its geometry is a
fraction of the picture's short side, so a copy scaled to any size with the same aspect
reads the same. It is kept small (3% of a 16:9 picture) yet a cell is still about 3 pixels
at 160x90, the smallest picture it must read in after H.264 and scaling (reading fails
at about 1.5 pixels). The four grid corners are reference cells (white, black / black, white)
that set the threshold; the other 32 cells carry 16 index bits and a 16-bit CRC, whitened
by a fixed mask. Each cell is read as the mean of its central part, so compression and
resampling at the edges do not matter. A cell too close to the threshold, weak references
or a CRC mismatch make `read` return None rather than a wrong number.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

ROWS, COLS = 4, 9  # a compact block in the corner rather than a strip along the bottom
CELL = 0.035  # cell side, as a fraction of the picture's short side
MARGIN = 0.035  # plate's distance from the left and bottom edges
PAD = 0.25  # black plate around the grid, in cells: keeps the background's detail off the outer cells
MAX_INDEX = 0xFFFF

_REFS = {(0, 0): True, (0, COLS - 1): False, (ROWS - 1, 0): False, (ROWS - 1, COLS - 1): True}
_DATA_CELLS = [(r, c) for r in range(ROWS) for c in range(COLS) if (r, c) not in _REFS]
_WHITEN = 0x9E3779B9  # breaks up runs so no flat or repetitive area looks like a code
_SAMPLE = 0.5  # side of the sampled central square, as a fraction of the cell
_MIN_CONTRAST = 60.0  # white minus black reference, in 8-bit levels
_DEAD_BAND = 0.3  # a cell must lie below this or above 1 - this of the reference range


def _crc16(value: int) -> int:
    """CRC-16/CCITT-FALSE of the two bytes of `value`."""
    crc = 0xFFFF
    for byte in value.to_bytes(2, "big"):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _layout(width: int, height: int) -> tuple[float, float, float]:
    """Grid origin (left, top) and cell side in pixels."""
    cell = CELL * min(width, height)
    margin = MARGIN * min(width, height)
    left = margin + PAD * cell
    top = height - margin - PAD * cell - ROWS * cell
    return left, top, cell


def plate_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel box (left, top, right, bottom; exclusive) the code covers, for laying out other drawing."""
    left, top, cell = _layout(width, height)
    pad = PAD * cell
    return (round(left - pad), round(top - pad), round(left + COLS * cell + pad), round(top + ROWS * cell + pad))


def draw(image: Image.Image, index: int) -> None:
    """Burn `index` (0..65535) into `image` in place."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"frame index {index} is outside 0..{MAX_INDEX}")
    bits = ((index << 16) | _crc16(index)) ^ _WHITEN
    cells = dict(_REFS)
    for k, rc in enumerate(_DATA_CELLS):
        cells[rc] = bool(bits >> (31 - k) & 1)

    left, top, cell = _layout(*image.size)
    pen = ImageDraw.Draw(image)
    x0, y0, x1, y1 = plate_box(*image.size)
    pen.rectangle((x0, y0, x1 - 1, y1 - 1), fill="black")
    for (r, c), white in cells.items():
        if white:
            box = (round(left + c * cell), round(top + r * cell), round(left + (c + 1) * cell) - 1,
                   round(top + (r + 1) * cell) - 1)
            pen.rectangle(box, fill="white")


def _luma(pixels: Image.Image | np.ndarray) -> np.ndarray:
    """An (h, w) float array of 8-bit-scaled luma, rows top to bottom."""
    if isinstance(pixels, Image.Image):
        return np.asarray(pixels.convert("L"), dtype=np.float32)
    array = np.asarray(pixels)
    if array.ndim == 3:
        rgb = array[..., :3].astype(np.float32)
        array = rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    elif array.ndim != 2:
        raise ValueError(f"expected an (h, w), (h, w, 3) or (h, w, 4) array, got shape {array.shape}")
    array = array.astype(np.float32)
    if np.issubdtype(np.asarray(pixels).dtype, np.floating):
        array *= 255.0  # float pixels are 0..1
    return array


def read(pixels: Image.Image | np.ndarray) -> int | None:
    """The index burned into `pixels` (a PIL image or an (h, w[, 3|4]) array, top row first), or None.

    Float arrays are taken as 0..1 (bpy's pixels; flip those bottom-up rows first), others as 0..255.
    """
    luma = _luma(pixels)
    height, width = luma.shape
    left, top, cell = _layout(width, height)
    half = max(_SAMPLE * cell / 2, 0.5)

    def sample(r: int, c: int) -> float:
        cx, cy = left + (c + 0.5) * cell, top + (r + 0.5) * cell
        xa, xb = max(int(round(cx - half)), 0), min(int(round(cx + half)), width)
        ya, yb = max(int(round(cy - half)), 0), min(int(round(cy + half)), height)
        if xa >= xb or ya >= yb:
            return float("nan")
        return float(luma[ya:yb, xa:xb].mean())

    whites = [sample(r, c) for (r, c), white in _REFS.items() if white]
    blacks = [sample(r, c) for (r, c), white in _REFS.items() if not white]
    black, span = max(blacks), min(whites) - max(blacks)
    if not span >= _MIN_CONTRAST:  # also catches nan
        return None
    bits = 0
    for rc in _DATA_CELLS:
        level = (sample(*rc) - black) / span
        if math.isnan(level) or _DEAD_BAND <= level <= 1 - _DEAD_BAND:
            return None
        bits = (bits << 1) | (level > 0.5)
    bits ^= _WHITEN
    index, crc = bits >> 16, bits & 0xFFFF
    return index if _crc16(index) == crc else None

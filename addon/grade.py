"""Match to Neighbour's maths: a starting grade that gives a take the colour of the footage beside it.

The grade is Blender's sequencer Color Balance modifier in its Offset/Power/Slope mode, which maps
each channel value x (in [0, 1], in the space the modifier works in) to

    max(x * slope + (offset - 1), 0) ** (1 / power) * multiply

(MOD_color_balance.cc: color_balance_sop, with init_sop's `offset - 1` and `1 / power`); byte
images clamp the result to [0, 1] when stored, float ones at the display. With power 1 this is
a per-channel linear map: slope scales the take's spread to the neighbour's, offset moves its mean.
Pixels pushed past black or white are clipped, which would leave the mean short, so the offset is
solved against the clipped result. Pure numpy: no bpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLOPE_RANGE = (0.25, 4.0)  # beyond this the take is crushed or blown out: no longer a starting grade
SHIFT_RANGE = (-1.0, 1.0)  # offset - 1: Blender's offset is >= 0, and a shift past 1 is all white
_EPS = 1e-4
_SAMPLES = 1 << 16  # pixels per picture used for the statistics (a subsample of bigger frames)
_STEPS = 40  # bisection steps for the offset: far below a byte's precision


@dataclass(frozen=True)
class Grade:
    """Color Balance values in Offset/Power/Slope mode, as Blender stores them (offset 1 is none)."""

    slope: tuple[float, float, float]
    offset: tuple[float, float, float]
    power: tuple[float, float, float] = (1.0, 1.0, 1.0)



def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function undone (IEC 61966-2-1), for modifiers that work on linear values."""
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def channels(picture: np.ndarray, linear: bool = False) -> np.ndarray:
    """An RGB(A) uint8 picture as a (pixels, 3) float array in [0, 1]; sRGB decoded when `linear`."""
    picture = np.asarray(picture)
    if picture.ndim != 3 or picture.shape[2] < 3 or picture.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit RGB picture, not {picture.dtype} {picture.shape}")
    values = picture[..., :3].reshape(-1, 3).astype(np.float64) / 255.0
    if len(values) > _SAMPLES:  # an even subsample: the statistics do not need every pixel
        values = values[:: len(values) // _SAMPLES]
    return srgb_to_linear(values) if linear else values


def apply(values: np.ndarray, grade: Grade) -> np.ndarray:
    """What the Color Balance modifier makes of `values` ((pixels, 3) in [0, 1]), clipped as shown."""
    slope, shift = np.asarray(grade.slope), np.asarray(grade.offset) - 1.0
    graded = np.maximum(values * slope + shift, 0.0) ** (1.0 / np.asarray(grade.power))
    return np.clip(graded, 0.0, 1.0)


def _shift_for_mean(values: np.ndarray, slope: float, mean: float) -> float:
    """The shift that gives `values * slope + shift`, clipped to [0, 1], the mean `mean` (bisection:
    the clipped mean grows with the shift); the nearest end of SHIFT_RANGE when none does."""
    low, high = SHIFT_RANGE
    scaled = values * slope
    for _ in range(_STEPS):
        middle = (low + high) / 2
        if np.clip(scaled + middle, 0.0, 1.0).mean() < mean:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def match(take: np.ndarray, neighbour: np.ndarray, strength: float = 1.0, linear: bool = False) -> Grade:
    """The grade that moves the take picture's per-channel mean and spread (standard deviation)
    towards the neighbour picture's: all the way at strength 1, not at all at 0. Both pictures are
    uint8 RGB as rendered; `linear` when the modifier works on linear values (then the statistics
    are taken on linear values too)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, not {strength}")
    ours, theirs = channels(take, linear), channels(neighbour, linear)
    slopes, offsets = [], []
    for c in range(3):
        mean, spread = ours[:, c].mean(), ours[:, c].std()
        # a flat channel has no spread to scale: only its level moves
        full = theirs[:, c].std() / spread if spread > _EPS else 1.0
        slope = 1.0 + strength * (float(np.clip(full, *SLOPE_RANGE)) - 1.0)
        target = mean + strength * (theirs[:, c].mean() - mean)
        slopes.append(slope)
        offsets.append(1.0 + _shift_for_mean(ours[:, c], slope, target))
    return Grade(tuple(slopes), tuple(offsets))

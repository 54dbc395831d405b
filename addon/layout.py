"""Where shots go on the music: every N bars, one per section, or from a shot list's bar counts.

Works in song-file seconds; the Blender side turns them into scene frames (the frame
nearest each beat time) through the song strip's placement.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    start: float  # seconds in the song file
    end: float
    prompt: str = ""
    label: str = ""


def every_n_bars(bars: list[tuple[float, float]], n: int, first_bar: int = 0, last_bar: int | None = None,
                 prompts: list[str] | None = None) -> list[Slot]:
    """One slot per `n` bars over bars [first_bar, last_bar) (0-based); a short remainder becomes its own slot."""
    if n < 1:
        raise ValueError("a shot must span at least one bar")
    chosen = bars[first_bar:last_bar]
    slots = []
    for i in range(0, len(chosen), n):
        group = chosen[i:i + n]
        number = first_bar + i + 1
        slots.append(Slot(group[0][0], group[-1][1], label=_bar_label(number, number + len(group) - 1)))
    return _with_prompts(slots, prompts)


def per_section(sections: list[tuple[float, float, str]], prompts: list[str] | None = None) -> list[Slot]:
    return _with_prompts([Slot(a, b, label=label) for a, b, label in sections if b > a], prompts)


def from_bar_counts(bars: list[tuple[float, float]], rows: list[tuple[int, str]], first_bar: int = 0) -> list[Slot]:
    """Consecutive slots whose lengths in bars come from a shot list; rows past the song's end are refused."""
    slots, bar = [], first_bar
    for count, prompt in rows:
        if count < 1:
            raise ValueError(f"a shot list row asks for {count} bars")
        if bar + count > len(bars):
            raise ValueError(f"the shot list needs {bar + count} bars; the song has {len(bars)}")
        slots.append(Slot(bars[bar][0], bars[bar + count - 1][1], prompt, _bar_label(bar + 1, bar + count)))
        bar += count
    return slots


def _bar_label(first: int, last: int) -> str:
    """A slot's placeholder text: "bar 9" or "bars 9-12" (1-based)."""
    return f"bar {first}" if first == last else f"bars {first}-{last}"


def nearest(value: float, grid: list[float]) -> float:
    """The grid point nearest `value` (the grid sorted)."""
    if not grid:
        raise ValueError("the grid is empty")
    i = bisect.bisect_left(grid, value)
    candidates = grid[max(0, i - 1):i + 1]
    return min(candidates, key=lambda g: abs(g - value))


def _with_prompts(slots: list[Slot], prompts: list[str] | None) -> list[Slot]:
    if not prompts:
        return slots
    return [Slot(s.start, s.end, prompts[i % len(prompts)], s.label) for i, s in enumerate(slots)]

"""Finding take files that moved or were renamed: by name first, then by content.

A take remembers where its file was and the sha256 of its content (`media.content_key`).
The search walks the given folders once (no symbolic links followed, hidden folders skipped,
at most `max_files` files looked at) and keeps only files that could be a wanted take: the
same name, or the same extension for a take whose content is known. A candidate is accepted
only when its content key matches; a take recorded before keys existed is matched by name
(and size, when known) and only when exactly one file fits best, so a different clip is never
picked for it.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable, Iterator, Sequence

from .media import PARTIAL_SUFFIX, TRASH, content_key

MAX_FILES = 100_000
MAX_HASHED_BYTES = 4 << 30  # reading every clip of a big footage folder would take minutes
# Heavy trees that never hold takes, and the media folder's trash (Empty Trash would delete a take
# relinked there); hidden folders (.git, .cache ...) are skipped as well.
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "$recycle.bin", "system volume information", TRASH})


@dataclass(frozen=True)
class Wanted:
    """A missing take file."""

    path: str  # where it was: its name, and its folders rank candidates
    content_key: str = ""  # "" for a take recorded before keys existed
    size: int | None = None


@dataclass
class Found:
    paths: dict[int, Path] = field(default_factory=dict)  # index in the wanted list -> its file now
    ambiguous: set[int] = field(default_factory=set)  # no key, several files fit: none picked
    visited: int = 0
    notes: list[str] = field(default_factory=list)  # limits met: some files were not looked at


@dataclass
class _Candidate:
    path: Path
    order: int  # walk order: earlier roots first

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def _name_key(name: str) -> str:
    # macOS may hand back decomposed names, a copy on Windows another case
    return unicodedata.normalize("NFC", name).casefold()


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.casefold() in SKIPPED_FOLDERS


def _walk(roots: Iterable[Path], max_files: int, found: Found) -> Iterator[Path]:
    """Every regular file under `roots`, each folder once (roots may nest), up to `max_files`."""
    seen: set[str] = set()
    for root in roots:
        stack = [str(Path(root).resolve())]
        while stack:
            folder = stack.pop()
            if folder in seen:
                continue
            seen.add(folder)
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue  # unreadable or gone: the rest of the search goes on
            subfolders = []
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not _skipped(entry.name):
                            subfolders.append(entry.path)
                        continue
                    if not entry.is_file(follow_symlinks=False) or entry.name.endswith(PARTIAL_SUFFIX):
                        continue
                except OSError:
                    continue
                if found.visited >= max_files:
                    found.notes.append(f"stopped after {max_files} files: folders further on were not searched")
                    return
                found.visited += 1
                yield Path(entry.path)
            stack.extend(reversed(subfolders))  # depth first, in name order


def _closeness(old: Path, candidate: Path) -> int:
    """How many folders above the file the two paths share, counted upwards
    (shotline/Shot A/take_001.mp4 moved with its project keeps "Shot A" and "shotline")."""
    count = 0
    for a, b in zip(reversed(old.parent.parts), reversed(candidate.parent.parts)):
        if _name_key(a) != _name_key(b):
            break
        count += 1
    return count


class _Keys:
    """Content keys of candidate files, each file read at most once, within a byte budget."""

    def __init__(self, budget: int, found: Found):
        self._keys: dict[Path, str] = {}
        self._budget = self._left = budget
        self._found = found
        self._exhausted = False

    def of(self, candidate: _Candidate) -> str:
        if candidate.path not in self._keys:
            try:
                size = candidate.size
                if size > self._left:
                    if not self._exhausted:
                        self._exhausted = True
                        self._found.notes.append(f"stopped comparing content after reading {self._budget >> 20} MB: "
                                                 "some files were not compared")
                    return ""
                self._left -= size
                self._keys[candidate.path] = content_key(candidate.path)
            except OSError:
                self._keys[candidate.path] = ""  # unreadable: it cannot be shown as the take either
        return self._keys[candidate.path]


def search(wanted: Sequence[Wanted], roots: Iterable[Path], in_use: Collection[Path] = (),
           max_files: int = MAX_FILES, max_hashed_bytes: int = MAX_HASHED_BYTES) -> Found:
    """Look for each of `wanted` under `roots` (searched in that order).

    `in_use` are files other takes already show: never given to a take matched by name alone.
    """
    found = Found()
    names = {_name_key(Path(w.path).name) for w in wanted}
    suffixes = {_name_key(Path(w.path).suffix) for w in wanted if w.content_key}
    by_name: dict[str, list[_Candidate]] = {}
    by_suffix: dict[str, list[_Candidate]] = {}
    for order, path in enumerate(_walk(roots, max_files, found)):
        candidate = _Candidate(path, order)
        name = _name_key(path.name)
        if name in names:
            by_name.setdefault(name, []).append(candidate)
        if _name_key(path.suffix) in suffixes:
            by_suffix.setdefault(_name_key(path.suffix), []).append(candidate)

    keys = _Keys(max_hashed_bytes, found)
    keyed = [i for i, w in enumerate(wanted) if w.content_key]
    for index in keyed:
        w, old = wanted[index], Path(wanted[index].path)
        named = _ranked(old, by_name.get(_name_key(old.name), []), w.size)
        tried = {c.path for c in named}
        renamed = [c for c in _ranked(old, by_suffix.get(_name_key(old.suffix), []), w.size) if c.path not in tried]
        match = next((c for c in named + renamed if keys.of(c) == w.content_key.lower()), None)
        if match is not None:
            found.paths[index] = match.path
    # Matched by name alone: never a file another take shows or was just found to be.
    busy = {Path(p).resolve() for p in [*in_use, *found.paths.values()]}
    for index in (i for i, w in enumerate(wanted) if not w.content_key):
        w, old = wanted[index], Path(wanted[index].path)
        named = [c for c in _ranked(old, by_name.get(_name_key(old.name), []), w.size) if c.path.resolve() not in busy]
        best = [c for c in named if _closeness(old, c.path) == _closeness(old, named[0].path)]
        if len(best) == 1:
            found.paths[index] = best[0].path
        elif best:
            found.ambiguous.add(index)
    return found


def _ranked(old: Path, candidates: list[_Candidate], size: int | None) -> list[_Candidate]:
    """Candidates of the right size (when known), those in folders like the old one's first."""
    fitting = []
    for c in candidates:
        try:
            if size is None or c.size == size:
                fitting.append(c)
        except OSError:
            continue
    return sorted(fitting, key=lambda c: (-_closeness(old, c.path), c.order))

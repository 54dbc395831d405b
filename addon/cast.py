"""Who is in a shot: the names in its cast field and the cast names its prompt mentions.

Names are compared word by word on a loose key: NFC-normalised, str.casefold()ed, with the
Turkic dotted and dotless i folded to "i" ("İlqar", "ILQAR" and "ilqar" are one name; so are
"Aydın" and "AYDIN").

A prompt mentions a name when its words appear in the prompt as consecutive whole words, each
either equal to the name's word or an inflected form of it. An inflected form (so "Лейлы",
"Лейлу", "Лейлой" name "Лейла", and "Gülərin", "Səmədə" name "Gülər", "Səməd") is a word that
starts with the name word's stem and adds at most 2 letters to it, for name words of 4 or more
letters; the stem is the word without its final vowel ("Лейл"), or the whole word when it ends
in a consonant ("Səməd"). Shorter words must match exactly, or "Ali" would name "Alice". The rule
is deliberately simple: "Mark" also matches "Marks" and "Market".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

STEM_MIN_LETTERS = 4  # shorter name words are matched exactly
MAX_ENDING = 2  # letters an inflected form may add to the stem
VOWELS = frozenset("aeiouyəıöüäåæøéèêëíìîïóòôõúùûāēīōū" "аеёиоуыэюяіїєө")
_WORD = re.compile(r"[\w\u0300-\u036f]+")  # combining accents stay inside their word
_SEPARATORS = re.compile(r"[,;\n]")


@dataclass(frozen=True)
class InShot:
    """Who is in a shot."""

    names: tuple[str, ...]  # the field's cast names, then the prompt's others in prompt order
    from_prompt: tuple[str, ...]  # those of `names` only the prompt names
    unknown: tuple[str, ...]  # names in the field the cast lacks


def _fold(text: str) -> str:
    """The loose form names are compared in."""
    folded = unicodedata.normalize("NFC", text).casefold()
    return folded.replace("\u0307", "").replace("ı", "i")


def words(text: str) -> list[str]:
    """The words of `text`, each in its loose form."""
    return [_fold(w) for w in _WORD.findall(unicodedata.normalize("NFC", text))]


def name_key(name: str) -> str:
    """What two spellings of one name share ("gülər", "GÜLƏR", "Gülər  " are one name)."""
    return " ".join(words(name))


def field_names(text: str) -> list[str]:
    """"Лейла, Old Town; Gülər" -> ["Лейла", "Old Town", "Gülər"]: trimmed, no empty or repeated names."""
    names, seen = [], set()
    for part in _SEPARATORS.split(text):
        name = " ".join(part.split())
        if name_key(name) and name_key(name) not in seen:
            seen.add(name_key(name))
            names.append(name)
    return names


def _stem(word: str) -> str:
    return word[:-1] if word[-1] in VOWELS else word


def word_matches(name_word: str, word: str) -> bool:
    """Whether prompt `word` is `name_word` or an inflected form of it (both in loose form)."""
    if word == name_word:
        return True
    if len(name_word) < STEM_MIN_LETTERS:
        return False
    stem = _stem(name_word)
    return word.startswith(stem) and len(word) - len(stem) <= MAX_ENDING


def mentioned(prompt: str, names: Iterable[str]) -> list[str]:
    """The `names` the prompt mentions, in the order the prompt first mentions them. Where names
    overlap ("Лейла" and "Лейла Алиева"), the longest one at a place in the prompt wins."""
    candidates = sorted(((words(n), n) for n in names), key=lambda c: -len(c[0]))
    text = words(prompt)
    found: list[str] = []
    position = 0
    while position < len(text):
        for parts, name in candidates:
            if parts and all(position + i < len(text) and word_matches(p, text[position + i])
                             for i, p in enumerate(parts)):
                if name not in found:
                    found.append(name)
                position += len(parts)
                break
        else:
            position += 1
    return found


def in_shot(field: str, prompt: str, cast: Sequence[str]) -> InShot:
    """Who is in a shot: the cast field's names (as the cast spells them), then the cast names
    the prompt mentions, each once; names in the field that are not in the cast are `unknown`."""
    by_key = {name_key(name): name for name in reversed(cast)}  # the first of two equal names wins
    names, unknown = [], []
    for name in field_names(field):
        known = by_key.get(name_key(name))
        if known is None:
            unknown.append(name)
        elif known not in names:  # two spellings of one name
            names.append(known)
    from_prompt = [name for name in mentioned(prompt, by_key.values()) if name not in names]
    return InShot(tuple(names + from_prompt), tuple(from_prompt), tuple(unknown))

"""Shot lists: a CSV or JSON file of rows, each with a length in bars and a prompt.

CSV is what spreadsheets export: comma, semicolon or tab separated, UTF-8 with or without a BOM
(or UTF-16 with a BOM, Excel's "Unicode Text"), a header row naming the columns `bars` and
`prompt` in any case and spacing; other columns are ignored. JSON is a list of
{"bars": n, "prompt": "..."} objects, keys likewise. A prompt loses its surrounding spaces and
nothing else; an empty one stays empty.

Errors say where, as the director sees it: a CSV row is its spreadsheet row number (the header
is row 1, the first shot usually row 2, blank rows count), a JSON item its place in the list
(the first is item 1).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

BARS, PROMPT = "bars", "prompt"
DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_JSON_SHAPE = '[{"bars": 2, "prompt": "..."}, ...]'


def read(path: str | Path) -> list[tuple[int, str]]:
    """Rows of (bars, prompt); ValueError with a message for the director when the file is not a shot list."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read the shot list {path.name}: {err.strerror}") from None
    text = _decode(data, path.name)
    if path.suffix.lower() == ".json":
        return _read_json(text, path.name)
    return _read_csv(text, path.name)


def write(path: str | Path, rows: list[tuple[int, str]]) -> None:
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps([{BARS: b, PROMPT: p} for b, p in rows], indent=2, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        return
    # The BOM makes Excel read the file as UTF-8 (without it, Cyrillic or Greek opens as Latin-1 garbage).
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow([BARS, PROMPT])
        writer.writerows(rows)


def _decode(data: bytes, name: str) -> str:
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[:err.start].decode(encoding, errors="replace").count("\n") + 1
        raise ValueError(f"{name} line {line} is not UTF-8 text: save the shot list as CSV UTF-8") from None


def _read_csv(text: str, name: str) -> list[tuple[int, str]]:
    try:
        parsed = _parse(text)
    except csv.Error as err:
        raise ValueError(f"{name} is not a valid shot list: {err}") from None
    if parsed is None:
        raise ValueError(f"{name} is empty: a shot list has a header row (bars, prompt) and a row per shot")
    records, top, delimiter = parsed
    header = records[top]
    columns = {}
    for wanted in (BARS, PROMPT):
        found = _find(header, wanted)
        if not found:
            raise ValueError(f"{name} has no \"{wanted}\" column: its header row (row {top + 1}) has "
                             f"{_names(header)}")
        if len(found) > 1:
            raise ValueError(f"{name} has {len(found)} \"{wanted}\" columns: keep one")
        columns[wanted] = found[0]
    width = len(_trimmed(header))
    rows = []
    for number, record in enumerate(records[top + 1:], top + 2):  # spreadsheet rows: the header's is top + 1
        used = len(_trimmed(record))
        if not used:
            continue
        where = f"{name} row {number}"
        if used > width:
            raise ValueError(f"{where} has {used} cells, the header {width}: a prompt with a "
                             f"{_DELIMITER_NAMES[delimiter]} in it goes in double quotes")
        cell = dict(enumerate(record))
        rows.append((_bars(cell.get(columns[BARS], ""), f"{where}, column \"bars\""),
                     cell.get(columns[PROMPT], "").strip()))
    if not rows:
        raise ValueError(f"{name} has a header but no shots: add a row per shot under it")
    return rows


def _parse(text: str) -> tuple[list[list[str]], int, str] | None:
    """(records, index of the header record, delimiter): the delimiter whose header names a bars
    column, else the one that splits the header into the most columns; None when all is blank."""
    best = None
    for delimiter in DELIMITERS:
        # newline="": quoted cells keep their line breaks and a record is a spreadsheet row.
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        top = next((i for i, record in enumerate(records) if _trimmed(record)), None)
        if top is None:
            continue
        if _find(records[top], BARS):
            return records, top, delimiter
        if best is None or len(_trimmed(records[top])) > len(_trimmed(best[0][best[1]])):
            best = records, top, delimiter
    return best


def _read_json(text: str, name: str) -> list[tuple[int, str]]:
    if not text.strip():
        raise ValueError(f"{name} is empty: a JSON shot list is a list like {_JSON_SHAPE}")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} is not valid JSON: line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(items, list):
        raise ValueError(f"{name}: a JSON shot list is a list like {_JSON_SHAPE}, not {_shown(items)}")
    if not items:
        raise ValueError(f"{name} has no shots: add one object per shot to its list")
    rows = []
    for number, item in enumerate(items, 1):
        where = f"{name} item {number}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object like {{\"bars\": 2, \"prompt\": \"...\"}}, "
                             f"got {_shown(item)}")
        keys = list(item)
        fields = {}
        for wanted in (BARS, PROMPT):
            found = _find(keys, wanted)
            if not found:
                raise ValueError(f"{where} has no \"{wanted}\": it has {_names(keys)}")
            if len(found) > 1:
                raise ValueError(f"{where} has {len(found)} \"{wanted}\" keys: keep one")
            fields[wanted] = item[keys[found[0]]]
        prompt = "" if fields[PROMPT] is None else fields[PROMPT]
        if not isinstance(prompt, str):
            raise ValueError(f"{where}, \"prompt\": expected text, got {_shown(prompt)}")
        rows.append((_bars(fields[BARS], f"{where}, \"bars\""), prompt.strip()))
    return rows


def _bars(value, where: str) -> int:
    """A whole number of bars, 1 or more: 2, "2", " 2 ", 2.0 or "2.0"; never a bool."""
    number = value
    if isinstance(number, str):
        try:
            number = float(number) if "." in number else int(number)
        except ValueError:
            number = None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if type(number) is not int or number < 1:
        raise ValueError(f"{where}: expected a whole number of bars (1 or more), got {_shown(value)}")
    return number


def _key(name) -> str:
    return name.strip().casefold() if isinstance(name, str) else ""


def _find(names: list, wanted: str) -> list[int]:
    return [i for i, n in enumerate(names) if _key(n) == wanted]


def _trimmed(record: list[str]) -> list[str]:
    """The record without its trailing blank cells (spreadsheets pad rows to the widest one)."""
    end = len(record)
    while end and not record[end - 1].strip():
        end -= 1
    return record[:end]


def _names(names: list[str]) -> str:
    shown = [f"\"{n.strip()}\"" for n in names if n.strip()]
    return ", ".join(shown) if shown else "nothing"


def _shown(value) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return "nothing"
    if isinstance(value, str):
        text = value.strip()
        return f"\"{text[:40]}…\"" if len(text) > 40 else f"\"{text}\""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return json.dumps(value)

"""Shot lists: a CSV or JSON file of rows, each with a length in bars and a prompt."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def read(path: str | Path) -> list[tuple[int, str]]:
    """Rows of (bars, prompt). CSV needs a header with `bars` and `prompt`; JSON is a list of such objects."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise ValueError("a JSON shot list is a list of {\"bars\": n, \"prompt\": \"...\"} objects")
        else:
            with path.open(newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
        out = []
        for number, row in enumerate(rows, 1):
            try:
                out.append((int(row["bars"]), str(row.get("prompt") or "").strip()))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"row {number} needs a whole number in \"bars\"") from None
        return out
    except OSError as err:
        raise ValueError(f"cannot read the shot list {path.name}: {err.strerror}") from None
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as err:
        raise ValueError(f"{path.name} is not a valid shot list: {err}") from None


def write(path: str | Path, rows: list[tuple[int, str]]) -> None:
    path = Path(path)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([{"bars": b, "prompt": p} for b, p in rows], indent=2), encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["bars", "prompt"])
        writer.writerows(rows)

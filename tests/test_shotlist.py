"""Shot lists as spreadsheets and scripts write them: real files, exact rows, exact error text.

Row numbers in CSV errors are spreadsheet rows: the header is row 1. JSON errors name the item,
the first being item 1.
"""

from __future__ import annotations

import json

import pytest

from addon import shotlist

SHOTS = [
    (2, "Певица выходит из трамвая, неоновый дождь"),  # Cyrillic, and a comma inside the cell
    (1, "Gecə şəhərin işıqları; ğ ı ş ə, yavaş kamera"),  # Azerbaijani, a semicolon and a comma
    (4, "Η τραγουδίστρια «στη βροχή» λέει \"γεια\""),  # Greek, guillemets and double quotes
    (2, ""),  # no prompt yet: a placeholder shot
    (3, "two lines:\nthe chorus\ttab"),  # a cell with a line break and a tab
    (8, "夜の街  with  double  spaces"),
]


def _cell(text: str, sep: str) -> str:
    """A cell as spreadsheets quote it (written here by hand, not with the csv module under test)."""
    if any(c in text for c in (sep, '"', "\n", "\r")):
        return '"' + text.replace('"', '""') + '"'
    return text


def _sheet(rows, sep: str, eol: str = "\r\n") -> str:
    return "".join(sep.join(_cell(str(c), sep) for c in row) + eol for row in rows)


def _csv(tmp_path, text: str, name="shots.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _error(path) -> str:
    with pytest.raises(ValueError) as caught:
        shotlist.read(path)
    return str(caught.value)


# -- what comes through ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sep", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"], ids=["utf8", "utf8-bom", "utf16-bom"])
@pytest.mark.parametrize("eol", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_every_separator_and_encoding_brings_every_script_through_exactly(tmp_path, sep, encoding, eol):
    path = _csv(tmp_path, _sheet([("bars", "prompt"), *SHOTS], sep, eol), encoding=encoding)
    assert shotlist.read(path) == SHOTS


def test_a_semicolon_file_as_libreoffice_exports_it(tmp_path):
    text = 'Bars;Prompt;Notes\r\n2;"Ночной город; неон";first take was too dark\r\n1;Gecə;\r\n;;\r\n'
    assert shotlist.read(_csv(tmp_path, "\ufeff" + text)) == [(2, "Ночной город; неон"), (1, "Gecə")]


@pytest.mark.parametrize("header", ["bars,prompt", "Bars,Prompt", " BARS , PROMPT ", "Bars ,Prompt ",
                                    "\u00a0bars\u00a0,\tPrompt", "prompt,bars"])
def test_header_in_any_case_spacing_and_order(tmp_path, header):
    flipped = header.strip().lower().startswith("prompt")
    body = "a neon sunrise,2\n" if flipped else "2,a neon sunrise\n"
    assert shotlist.read(_csv(tmp_path, header + "\n" + body)) == [(2, "a neon sunrise")]


def test_other_columns_are_ignored_and_blank_rows_skipped(tmp_path):
    text = "shot,bars,prompt,notes\n\n1,2,a neon sunrise,ok\n,,,\n2,1,the singer,\n\n"
    assert shotlist.read(_csv(tmp_path, text)) == [(2, "a neon sunrise"), (1, "the singer")]


def test_an_empty_prompt_stays_empty(tmp_path):
    text = 'bars,prompt\n2,\n3\n1,"   "\n4,  a car at night  \n'
    assert shotlist.read(_csv(tmp_path, text)) == [(2, ""), (3, ""), (1, ""), (4, "a car at night")]


@pytest.mark.parametrize("cell, bars", [("2", 2), (" 16 ", 16), ("2.0", 2), ("+3", 3)])
def test_bars_as_spreadsheets_write_them(tmp_path, cell, bars):
    assert shotlist.read(_csv(tmp_path, f"bars,prompt\n{cell},x\n")) == [(bars, "x")]


# -- errors: the row, the column, what was expected ------------------------------------------------------------


@pytest.mark.parametrize("cell, got", [("two", '"two"'), ("0", '"0"'), ("-1", '"-1"'), ("2.5", '"2.5"'),
                                       ("", "nothing"), ("  ", "nothing"), ("a very long prompt typed into the "
                                       "bars column by mistake", '"a very long prompt typed into the bars c…"')])
def test_bad_bars_name_the_spreadsheet_row_and_column(tmp_path, cell, got):
    path = _csv(tmp_path, f"bars,prompt\n2,first\n{cell},second\n")
    assert _error(path) == (f'shots.csv row 3, column "bars": expected a whole number of bars (1 or more), '
                            f"got {got}")


def test_row_numbers_count_blank_rows_and_multi_line_cells_as_spreadsheets_do(tmp_path):
    # Row 1 header, row 2 blank, row 3 a two-line cell (one spreadsheet row), row 4 the mistake.
    text = 'bars;prompt\n\n2;"verse,\nslow"\ntwo;chorus\n'
    assert _error(_csv(tmp_path, text)) == ('shots.csv row 4, column "bars": expected a whole number of bars '
                                            '(1 or more), got "two"')


def test_empty_files_say_so(tmp_path):
    message = "shots.csv is empty: a shot list has a header row (bars, prompt) and a row per shot"
    assert _error(_csv(tmp_path, "")) == message
    assert _error(_csv(tmp_path, "\ufeff\r\n \n")) == message


@pytest.mark.parametrize("text", ["bars,prompt\n", "Bars;Prompt\r\n;\r\n\r\n"])
def test_a_header_without_rows_says_so(tmp_path, text):
    assert _error(_csv(tmp_path, text)) == "shots.csv has a header but no shots: add a row per shot under it"


def test_a_missing_column_names_the_columns_found(tmp_path):
    assert _error(_csv(tmp_path, "Bar;Prompt;Notes\n2;x;y\n")) == (
        'shots.csv has no "bars" column: its header row (row 1) has "Bar", "Prompt", "Notes"')
    assert _error(_csv(tmp_path, "\nbars,promt\n2,x\n")) == (
        'shots.csv has no "prompt" column: its header row (row 2) has "bars", "promt"')
    assert _error(_csv(tmp_path, "2,a neon sunrise\n1,the singer\n")) == (
        'shots.csv has no "bars" column: its header row (row 1) has "2", "a neon sunrise"')


def test_a_column_named_twice_is_refused(tmp_path):
    assert _error(_csv(tmp_path, "bars,prompt,Prompt\n2,a,b\n")) == 'shots.csv has 2 "prompt" columns: keep one'


def test_an_unquoted_separator_in_a_prompt_is_refused_not_cut(tmp_path):
    assert _error(_csv(tmp_path, "bars,prompt\n2,a car, at night\n")) == (
        "shots.csv row 2 has 3 cells, the header 2: a prompt with a comma in it goes in double quotes")
    assert _error(_csv(tmp_path, "bars;prompt\n2;a car; at night\n")) == (
        "shots.csv row 2 has 3 cells, the header 2: a prompt with a semicolon in it goes in double quotes")


def test_a_file_not_in_utf8_says_which_line(tmp_path):
    path = _csv(tmp_path, "bars,prompt\n2,caf\u00e9\n", encoding="cp1252")
    assert _error(path) == "shots.csv line 2 is not UTF-8 text: save the shot list as CSV UTF-8"


def test_a_missing_file_says_so(tmp_path):
    assert _error(tmp_path / "gone.csv") == "cannot read the shot list gone.csv: No such file or directory"


# -- JSON: the same rules and messages ---------------------------------------------------------------------------


def _json(tmp_path, text: str, name="shots.json"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_json_keys_in_any_case_and_every_script(tmp_path):
    items = [{" Bars": b, "PROMPT ": p, "notes": "ignored"} for b, p in SHOTS]
    assert shotlist.read(_json(tmp_path, json.dumps(items, ensure_ascii=False))) == SHOTS
    assert shotlist.read(_json(tmp_path, json.dumps(items))) == SHOTS  # \u escapes too


def test_json_values_follow_the_csv_rules(tmp_path):
    text = '[{"bars": 2.0, "prompt": null}, {"bars": "3", "prompt": "  x  "}, {"Bars": 1, "Prompt": ""}]'
    assert shotlist.read(_json(tmp_path, "\ufeff" + text)) == [(2, ""), (3, "x"), (1, "")]


@pytest.mark.parametrize("value, got", [('"two"', '"two"'), ("0", "0"), ("2.5", "2.5"), ("true", "true"),
                                        ("null", "nothing"), ('""', "nothing"), ("[2]", "a list")])
def test_json_bad_bars_name_the_item(tmp_path, value, got):
    path = _json(tmp_path, f'[{{"bars": 1, "prompt": "a"}}, {{"bars": {value}, "prompt": "b"}}]')
    assert _error(path) == f'shots.json item 2, "bars": expected a whole number of bars (1 or more), got {got}'


@pytest.mark.parametrize("text, message", [
    ("", 'shots.json is empty: a JSON shot list is a list like [{"bars": 2, "prompt": "..."}, ...]'),
    ("[]", "shots.json has no shots: add one object per shot to its list"),
    ('{"bars": 2, "prompt": "x"}',
     'shots.json: a JSON shot list is a list like [{"bars": 2, "prompt": "..."}, ...], not an object'),
    ('[{"bars": 2, "prompt": "x"}, 4]',
     'shots.json item 2: expected an object like {"bars": 2, "prompt": "..."}, got 4'),
    ('[{"Bar": 2, "prompt": "x"}]', 'shots.json item 1 has no "bars": it has "Bar", "prompt"'),
    ('[{"bars": 2}]', 'shots.json item 1 has no "prompt": it has "bars"'),
    ("[{}]", 'shots.json item 1 has no "bars": it has nothing'),
    ('[{"bars": 2, "BARS": 3, "prompt": "x"}]', 'shots.json item 1 has 2 "bars" keys: keep one'),
    ('[{"bars": 2, "prompt": 7}]', 'shots.json item 1, "prompt": expected text, got 7'),
    ('[{"bars": 2, "prompt": "x"},\n {"bars": 1 "prompt": "y"}]',
     "shots.json is not valid JSON: line 2, column 13: Expecting ',' delimiter"),
])
def test_json_errors(tmp_path, text, message):
    assert _error(_json(tmp_path, text)) == message


# -- write ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shots.csv", "shots.json"])
def test_write_round_trips_with_read(tmp_path, name):
    path = tmp_path / name
    shotlist.write(path, SHOTS)
    assert shotlist.read(path) == SHOTS


def test_written_files_open_in_spreadsheets_and_stay_readable(tmp_path):
    shotlist.write(tmp_path / "shots.csv", SHOTS[:2])
    assert (tmp_path / "shots.csv").read_bytes() == (
        "\ufeffbars,prompt\r\n2,\"Певица выходит из трамвая, неоновый дождь\"\r\n"
        "1,\"Gecə şəhərin işıqları; ğ ı ş ə, yavaş kamera\"\r\n").encode("utf-8")
    shotlist.write(tmp_path / "shots.json", SHOTS[2:3])
    assert "«στη βροχή»" in (tmp_path / "shots.json").read_text(encoding="utf-8")

"""The service's settings (``METALEARN_*``): a bad one is a one-line error naming the variable, the value and what
it takes, from ``metalearn serve`` and from ``Settings()`` / ``create_app()`` in Python (it was pydantic's report of
several lines, and ``metalearn serve`` called it an unexpected ValidationError)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from metalearn.data.errors import InputError
from metalearn.service.settings import Settings

BAD = [
    ("MAX_ROWS", "abc", "METALEARN_MAX_ROWS='abc' is not an integer: give a whole number >= 10 such as 1000000"),
    ("MAX_PAGE_SIZE", "2.5", "METALEARN_MAX_PAGE_SIZE='2.5' is not an integer: give a whole number >= 1 such as 1000"),
    ("SEARCH_WORKERS", "0", "METALEARN_SEARCH_WORKERS='0' is too small: give a whole number from 1 to 64 such as 1"),
    ("SEARCH_WORKERS", "65", "METALEARN_SEARCH_WORKERS='65' is too large: give a whole number from 1 to 64 such as 1"),
    ("MAX_SEARCH_SECONDS", "0", "METALEARN_MAX_SEARCH_SECONDS='0' is too small: give a number > 0 such as 21600.0"),
    ("ADVISOR_REFRESH_SECONDS", "soon",
     "METALEARN_ADVISOR_REFRESH_SECONDS='soon' is not a number: give a number >= 0.0 such as 30.0"),
    ("PREDICTION_LOG_SAMPLE", "2",
     "METALEARN_PREDICTION_LOG_SAMPLE='2' is too large: give a number from 0.0 to 1.0 such as 1.0"),
    ("PROTECT_READS", "maybe",
     "METALEARN_PROTECT_READS='maybe' is not true or false: give true or false (or 1/0, yes/no, on/off)"),
    ("PROTECT_DOCS", "maybe",  # (an optional boolean)
     "METALEARN_PROTECT_DOCS='maybe' is not true or false: give true or false (or 1/0, yes/no, on/off)"),
]


@pytest.fixture(autouse=True)
def _no_metalearn_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("METALEARN_") and name.upper() not in ("METALEARN_CORPUS", "METALEARN_SHARED"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("name", "value", "expected"), BAD)
def test_a_bad_variable_is_one_line_naming_it_the_value_and_what_it_takes(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(f"METALEARN_{name}", value)
    with pytest.raises(InputError) as err:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert str(err.value) == expected


def test_a_bad_value_in_a_dotenv_file_is_named_as_its_variable(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("METALEARN_MAX_COLUMNS=many\n")
    with pytest.raises(InputError, match=r"^METALEARN_MAX_COLUMNS='many' is not an integer: give a whole number >= 2 "):
        Settings(_env_file=env)  # type: ignore[call-arg]


def test_a_bad_keyword_in_python_is_named_as_the_keyword_and_every_bad_setting_is_said_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METALEARN_MAX_ROWS", "abc")
    with pytest.raises(InputError) as err:
        Settings(_env_file=None, search_workers=100)  # type: ignore[call-arg]
    said = str(err.value)
    assert "\n" not in said
    assert said == (  # (in the order of the fields)
        "METALEARN_MAX_ROWS='abc' is not an integer: give a whole number >= 10 such as 1000000; "
        "search_workers=100 is too large: give a whole number from 1 to 64 such as 1"
    )
    # the product's own check of a setting keeps its own words (and class) when it is the only problem
    monkeypatch.delenv("METALEARN_MAX_ROWS")
    with pytest.raises(InputError, match=r"^METALEARN_DRIFT_THRESHOLDS: unknown drift threshold\(s\) 'psx'"):
        Settings(_env_file=None, drift_thresholds={"psx": 0.2})  # type: ignore[call-arg]


def test_create_app_refuses_a_bad_variable_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from metalearn.service.app import create_app

    monkeypatch.chdir(tmp_path)  # (no .env of the working directory)
    monkeypatch.setenv("METALEARN_KB", str(tmp_path / "kb.duckdb"))
    monkeypatch.setenv("METALEARN_MAX_ROWS", "abc")
    with pytest.raises(InputError, match=r"^METALEARN_MAX_ROWS='abc' is not an integer: give a whole number"):
        create_app()


@pytest.mark.parametrize(("name", "value", "expected"), BAD[:1] + BAD[-1:])
def test_serve_stops_with_the_one_line_before_opening_the_kb(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    name: str, value: str, expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    kb_path = tmp_path / "kb.duckdb"
    monkeypatch.setenv("METALEARN_KB", str(kb_path))  # (serve sets it: restored after the test)
    monkeypatch.setenv(f"METALEARN_{name}", value)
    code, out, err = run_cli(capsys, "serve", "--kb", kb_path, "--port", "0")
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: {expected}"], err
    assert not kb_path.exists()  # stopped before the KB file was made and seeded

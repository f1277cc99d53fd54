"""The search parameters' CLI options are derived once (``with_search_options``), not listed by hand: ``optimize``
and ``models retrain`` get one option a ``SearchSettings`` field with a CLI flag (and ``--folds``), in the
declared order; a bad value is still the one-line usage error naming its flag; good values reach the command
as validated ``SearchSettings``."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from conftest import run_cli
from typer.testing import CliRunner

from metalearn.cli import app
from metalearn.cli.commands import SEARCH_DEFAULTS, optimize, with_search_options
from metalearn.cli.models import models_retrain
from metalearn.kb import open_kb
from metalearn.search.settings import PARAMS, PROTOCOL_PARAMS, SearchSettings, params

#: the fields of SearchSettings that declare a CLI flag, in declaration order, then n_folds (the protocol's folds)
CLI_FIELDS = [f.name for f in fields(SearchSettings) if "param" in f.metadata and f.metadata["param"].cli]
COMMANDS = {"optimize": optimize, "models retrain": models_retrain}


def _click_command(path: str) -> Any:
    command: Any = typer.main.get_command(app)
    for part in path.split():
        command = command.commands[part]
    return command


def test_the_declared_cli_parameters_are_fields_with_a_flag_and_the_folds() -> None:
    assert list(params("cli")) == [*CLI_FIELDS, *PROTOCOL_PARAMS]


@pytest.mark.parametrize("path", list(COMMANDS))
def test_each_command_signature_holds_every_search_option_in_declared_order(path: str) -> None:
    signature = inspect.signature(COMMANDS[path]).parameters
    assert "settings" not in signature  # replaced by the options
    names = list(signature)
    at = names.index(CLI_FIELDS[0])
    assert names[at:at + len(params("cli"))] == list(params("cli"))  # together, in the declared order
    for name, p in params("cli").items():
        assert signature[name].default == SEARCH_DEFAULTS[name] == p.default_for("cli"), name
    options = {o.name: o for o in _click_command(path).params}
    for name, p in params("cli").items():
        option = options[name]
        assert (*option.opts, *option.secondary_opts) == p.flags, (path, name)
        assert option.default == p.default_for("cli"), (path, name)
        assert option.help.startswith(p.help), (path, name)


def test_both_commands_take_the_same_search_options() -> None:
    def search_options(path: str) -> list[tuple[Any, ...]]:
        return [(o.name, o.opts, o.secondary_opts, o.default, o.help)
                for o in _click_command(path).params if o.name in params("cli")]

    assert search_options("optimize") == search_options("models retrain")
    assert len(search_options("optimize")) == len(PARAMS) - sum(p.cli is None for p in PARAMS.values())


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--workers", "0"], "Invalid value for '--workers': workers must be a positive integer, got 0"),
     (["--trials", "-1"], "Invalid value for '--trials': n_trials must be a positive integer, got -1"),
     (["--optimizer", "random", "--multi-fidelity"],
      "Invalid value for '--multi-fidelity': multi_fidelity needs optimizer='smac'"),
     (["--folds", "1"], "n_folds must be an integer >= 2, got 1")],  # EvalProtocol's check: names no flag
)
@pytest.mark.parametrize("path", list(COMMANDS))
def test_a_bad_search_option_is_the_one_line_usage_error_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, path: str, args: list[str], says: str
) -> None:
    kb = tmp_path / "kb.duckdb"
    data = ["sklearn:iris"] if path == "optimize" else ["m", "--data", "sklearn:iris"]
    code, out, err = run_cli(capsys, *path.split(), *data, *args, "--kb", kb)
    assert code == 2 and out == ""
    if "Invalid value" in says:  # the usage hint names the program (here pytest's) and the command
        assert err.startswith(f"error: {says} (`") and err.endswith(f" {path} --help` lists the options)\n"), err
    else:
        assert err == f"error: {says}\n"
    assert not kb.exists()


def test_a_bad_search_option_in_a_subprocess_exits_2_with_the_one_line(tmp_path: Path) -> None:
    kb = tmp_path / "kb.duckdb"
    proc = subprocess.run([sys.executable, "-m", "metalearn.cli", "optimize", "sklearn:iris", "--workers", "0",
                           "--kb", str(kb)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: Invalid value for '--workers': workers must be a positive integer, "
                                        "got 0 (`python -m metalearn.cli optimize --help` lists the options)"]
    assert not kb.exists()


# ------------------------------------------------------------------------------------------ good values
def _probe(name: str, *, settings: SearchSettings, loud: bool = False) -> None:
    typer.echo(json.dumps({"name": name, "loud": loud, "settings": settings.to_dict()}))


def test_the_decorated_command_gets_validated_settings_and_keeps_its_own_parameters() -> None:
    probe = typer.Typer()
    probe.command()(with_search_options(_probe))
    assert list(inspect.signature(with_search_options(_probe)).parameters) == ["name", *params("cli"), "loud"]
    result = CliRunner().invoke(probe, ["x", "--trials", "4", "--no-ensemble", "--seed", "7", "--folds", "3",
                                        "--workers", "2", "--strategy", "knn", "--loud"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert (got["name"], got["loud"]) == ("x", True)
    expected = SearchSettings.from_params(n_trials=4, ensemble=False, seed=7, n_folds=3, workers=2, strategy="knn")
    assert got["settings"] == expected.to_dict()
    result = CliRunner().invoke(probe, ["x"])  # no option given: the CLI's defaults
    assert json.loads(result.output)["settings"] == SearchSettings.from_params(**SEARCH_DEFAULTS).to_dict()


def test_optimize_passes_the_parsed_options_to_the_search(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kb = tmp_path / "kb.duckdb"
    open_kb(kb).close()  # empty: never seeded from a shipped snapshot
    code, out, err = run_cli(capsys, "optimize", "sklearn:iris", "--trials", "2", "--workers", "1",
                             "--time-limit", "20", "--trial-time-limit", "15", "--seed", "3", "--folds", "3",
                             "--no-ensemble", "--n-warm", "2", "--kb", kb, "--json")
    assert code == 0, err
    summary = json.loads(out)
    expected = SearchSettings.from_params(n_trials=2, workers=1, time_limit=20.0, trial_time_limit=15.0, seed=3,
                                          n_folds=3, ensemble=False, n_warm=2).to_dict()
    assert {k: summary["settings"][k] for k in expected} == expected
    assert summary["n_trials"] == 2

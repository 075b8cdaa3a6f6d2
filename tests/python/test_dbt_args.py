"""The dbt arguments `build` checks are read by dbt's own parser: a check that missed a spelling
would let dbt build part of the project, or another target, and the build publish it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dbt_helpers import PROJECT_ROOT

from retail_segments.ops.dbt_args import (
    DbtArgsError,
    DbtBuildArgs,
    dbt_target,
    default_selector,
    has_selection,
)


@pytest.mark.parametrize(
    "args",
    [
        ["--select", "customer_rfm"],
        ["--select=customer_rfm"],
        ["-s", "customer_rfm"],
        ["-scustomer_rfm"],
        ["-qs", "customer_rfm"],
        ["-fs", "customer_rfm"],
        ["--models", "x"],
        ["--model", "x"],
        ["-m", "x"],
        ["-mx"],
        ["--exclude", "x"],
        ["--selector=nightly"],
        ["--resource-type", "seed"],
        ["--resource-types=seed"],
        ["--exclude-resource-type", "unit_test"],
        ["--exclude-resource-types", "model"],
    ],
)
def test_every_spelling_of_a_selection_is_one(args: list[str]) -> None:
    assert has_selection(["--vars", "{a: 1}", *args], {})


def test_a_selection_from_dbt_environment_variables_is_one() -> None:
    """dbt 1.11 reads DBT_ENGINE_<name>, then DBT_<name> (dbt/cli/params.py EngineEnvVar)."""
    assert has_selection([], {"DBT_RESOURCE_TYPES": "seed"})
    assert has_selection([], {"DBT_EXCLUDE_RESOURCE_TYPES": "model"})
    assert has_selection([], {"DBT_ENGINE_EXCLUDE_RESOURCE_TYPES": "model"})
    assert has_selection([], {"DBT_ENGINE_RESOURCE_TYPES": "seed"})
    assert not has_selection(["--full-refresh", "--vars", "{rfm_as_of: 2011-06-01}"], {})
    assert not has_selection(["--target", "dev", "--threads", "2", "-q"], {})
    # arguments dbt refuses select nothing to build: never taken for a whole build
    assert has_selection(["--no-such-option"], {})


def test_the_target_is_the_one_dbt_takes() -> None:
    assert dbt_target(["-tlint"], {}) == "lint"
    assert dbt_target(["-qt", "lint"], {}) == "lint"
    assert dbt_target(["--target", "dev", "-t", "lint"], {}) == "lint"
    assert dbt_target(["--target", "dev", "--target", "lint"], {"DBT_TARGET": "spark"}) == "lint"
    assert dbt_target([], {"DBT_TARGET": "dev", "DBT_ENGINE_TARGET": "lint"}) == "lint"
    assert dbt_target(["--target", "dev"], {"DBT_ENGINE_TARGET": "lint"}) == "dev"
    assert dbt_target([], {"DBT_TARGET": "spark"}) == "spark"
    assert dbt_target([], {}) is None


def test_parsed_arguments_say_what_was_given_and_how_it_is_spelt() -> None:
    parsed = DbtBuildArgs.parse(["--threads", "3"], {"DBT_ENGINE_WRITE_JSON": " "})
    assert parsed.value("threads") == 3 and "threads" in parsed.given
    assert parsed.value("write_json") is False  # whitespace reads as false, as dbt reads it
    assert "--no-write-json" in parsed.spelled("write_json")
    assert "DBT_ENGINE_WRITE_JSON" in parsed.spelled("write_json")
    assert "warn_error_options" not in parsed.given
    assert parsed.given_as("threads") == "--threads on the command line"
    assert parsed.given_as("write_json") == "DBT_ENGINE_WRITE_JSON=' '"
    # dbt reads DBT_ENGINE_<name> first: the message names the variable dbt read
    both = {"DBT_FULL_REFRESH": "false", "DBT_ENGINE_FULL_REFRESH": "1"}
    assert DbtBuildArgs.parse([], both).given_as("full_refresh") == "DBT_ENGINE_FULL_REFRESH='1'"
    assert parsed.given_as("empty") == parsed.spelled("empty")  # not given: every spelling
    with pytest.raises(DbtArgsError, match="Invalid value for '--threads'"):
        DbtBuildArgs.parse(["--threads", "two"], {})


def test_a_default_selector_makes_every_run_a_selection(tmp_path: Path) -> None:
    """dbt runs only what a selector marked `default: true` selects when given no selection."""
    assert default_selector(tmp_path) is None
    assert not has_selection([], {}, tmp_path)
    (tmp_path / "selectors.yml").write_text(
        "selectors:\n  - name: all\n    definition: {method: fqn, value: '*'}\n"
        "  - name: quick\n    default: true\n    definition: {method: fqn, value: customer_rfm}\n"
    )
    assert default_selector(tmp_path) == "quick"
    assert has_selection([], {}, tmp_path)


def test_messages_say_how_a_build_is_limited_and_the_fix(tmp_path: Path) -> None:
    from retail_segments.ops.preflight import _selection_wording

    assert _selection_wording([], {}, tmp_path) is None
    limited, fix = _selection_wording(["-s", "x"], {}, tmp_path) or ("", "")
    assert limited == "limited by --select/--exclude" and "without --select/--exclude" in fix
    (tmp_path / "selectors.yml").write_text(
        "selectors:\n  - name: quick\n    default: true\n"
        "    definition: {method: fqn, value: customer_rfm}\n"
    )
    limited, fix = _selection_wording([], {}, tmp_path) or ("", "")
    assert limited == "limited by the default selector 'quick' of selectors.yml"
    assert "remove `default: true` from selectors.yml" in fix


def test_the_variables_are_read_from_the_environment_given_even_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    monkeypatch.setenv("DBT_ENGINE_TARGET", "lint")
    assert dbt_target([], os.environ) == "lint"
    assert os.environ["DBT_ENGINE_TARGET"] == "lint"  # put back as it was


def test_arguments_are_read_as_dbt_runs_them_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a subfolder of the checkout (or elsewhere with --project-dir), dbt's parser looked
    for profiles.yml in the working folder, then in ~/.dbt, and every build and prepare was
    refused ("Invalid value for '--profiles-dir'"). They are read as dbt is run: on the project,
    with its profiles.yml."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.dbt
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)
    monkeypatch.setenv("RETAIL_PROJECT_DIR", str(PROJECT_ROOT))
    parsed = DbtBuildArgs.parse(["--threads", "3"], dict(os.environ))
    assert parsed.value("threads") == 3
    assert parsed.value("profiles_dir") == str(PROJECT_ROOT)

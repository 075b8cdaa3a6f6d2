"""The dbt arguments `build` checks are read as dbt reads them: a check that missed a spelling
would let dbt build part of the project, or another target, and the build publish it."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_segments.ops.dbt_args import (
    dbt_target,
    default_selector,
    env_flag,
    env_setting,
    has_selection,
    option_value,
)


@pytest.mark.parametrize(
    "args",
    [
        ["--select", "customer_rfm"],
        ["--select=customer_rfm"],
        ["-s", "customer_rfm"],
        ["-scustomer_rfm"],
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
    assert has_selection([], {"DBT_RESOURCE_TYPES": "seed"})
    assert has_selection([], {"DBT_EXCLUDE_RESOURCE_TYPES": "model"})
    assert has_selection([], {"DBT_ENGINE_EXCLUDE_RESOURCE_TYPES": "model"})
    assert has_selection([], {"DBT_ENGINE_RESOURCE_TYPES": "seed"})
    assert not has_selection([], {"DBT_RESOURCE_TYPES": ""})
    assert not has_selection(["--full-refresh", "--vars", "{rfm_as_of: 2011-06-01}"], {})
    assert not has_selection(["--target", "dev", "--threads", "2"], {})


def test_an_option_counts_by_its_last_value_in_any_spelling() -> None:
    assert option_value(["--threads", "2", "--threads=3"], "--threads") == "3"
    assert option_value(["-tlint"], "--target", "-t") == "lint"
    assert option_value(["--target", "dev", "-t", "lint"], "--target", "-t") == "lint"
    assert option_value([], "--target", environ={"DBT_TARGET": "x"}, variable="DBT_TARGET") == "x"
    assert option_value(["--target"], "--target") is None  # no value: dbt's own usage error
    assert dbt_target(["--target", "dev", "--target", "lint"], {"DBT_TARGET": "spark"}) == "lint"
    assert dbt_target([], {"DBT_TARGET": "spark"}) == "spark"
    assert dbt_target([], {}) is None


def test_dbt_reads_a_variable_under_its_engine_name_first() -> None:
    """dbt 1.11 (dbt/cli/params.py EngineEnvVar): DBT_ENGINE_<name>, then DBT_<name>."""
    both = {"DBT_TARGET": "dev", "DBT_ENGINE_TARGET": "lint"}
    assert env_setting(both, "DBT_TARGET") == ("DBT_ENGINE_TARGET", "lint")
    assert env_setting({"DBT_TARGET": "dev"}, "DBT_TARGET") == ("DBT_TARGET", "dev")
    assert env_setting({"DBT_ENGINE_TARGET": " "}, "DBT_TARGET") is None
    assert dbt_target([], both) == "lint"
    assert dbt_target(["--target", "dev"], both) == "dev"
    assert env_flag({"DBT_ENGINE_EMPTY": "True"}, "DBT_EMPTY") == "DBT_ENGINE_EMPTY"
    assert env_flag({"DBT_EMPTY": "false"}, "DBT_EMPTY") is None


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

"""Settings checked before anything is built: the vars (types, ranges, against the data) and the
meta blocks of the fits, each refused with the setting, the value and the rule."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from dbt_helpers import PROJECT_ROOT

from retail_segments.ops.preflight import PreflightError, as_of_notes, prepare
from retail_segments.ops.settings import (
    DataFacts,
    SettingsError,
    check_environment,
    check_model_meta,
    check_vars,
    check_vars_against_data,
    parse_cli_vars,
    project_var_defaults,
)


def _project_with_meta(root: Path, yml: str) -> Path:
    (root / "models" / "ml" / "segmentation").mkdir(parents=True)
    (root / "models" / "ml" / "segmentation" / "_segmentation__models.yml").write_text(yml)
    return root


def test_the_shipped_meta_blocks_and_vars_pass() -> None:
    check_model_meta(PROJECT_ROOT)
    check_vars(project_var_defaults(PROJECT_ROOT))


def test_checking_the_settings_does_not_load_scikit_learn() -> None:
    """prepare checks every meta block before a build; with the settings models import-light
    (retail_segments.ml.settings) a refusal costs a fraction of a second, not the 2 s of loading
    scikit-learn, and the dbt models' entry points still import on first use."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from retail_segments.ops import preflight\n"
        "from retail_segments.ops.settings import check_model_meta\n"
        f"check_model_meta(Path({str(PROJECT_ROOT)!r}))\n"
        "assert 'sklearn' not in sys.modules, 'settings check loaded scikit-learn'\n"
        "from retail_segments.ml import customer_value_record, fit_tsne_stage\n"
        "assert 'sklearn' in sys.modules\n"
        "assert customer_value_record.__module__ == 'retail_segments.ml.value'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("meta", "phrases"),
    [
        (
            "{tsne: {n_clusters: seven}, sampling: {}}",
            ["ml_segmentation_tsne_fit.meta.tsne: key 'n_clusters' = 'seven'"],
        ),
        (
            "{tnse: {n_clusters: 7}}",
            ["ml_segmentation_tsne_fit.meta: unknown key(s) ['tnse']", "allowed keys are"],
        ),
        (
            "{tsne: {perplexity: -5}}",
            ["ml_segmentation_tsne_fit.meta.tsne: key 'perplexity' = -5", "greater than 0"],
        ),
        (
            "{tsne: {perplexity: .nan}}",
            ["ml_segmentation_tsne_fit.meta.tsne: key 'perplexity' = nan", "finite number"],
        ),
        (
            "{tsne: {k_range: [9, 3]}}",
            ["key 'k_range' = [9, 3]", "2 <= k_min <= k_max"],
        ),
        ("{tsne: 7}", ["ml_segmentation_tsne_fit.meta.tsne = 7: must be a mapping"]),
    ],
)
def test_a_bad_meta_block_is_refused_naming_model_key_and_rule(
    meta: str, phrases: list[str], tmp_path: Path
) -> None:
    yml = (
        "version: 2\nmodels:\n  - name: ml_segmentation_tsne_fit\n"
        f"    config:\n      meta: {meta}\n"
    )
    with pytest.raises(SettingsError) as raised:
        check_model_meta(_project_with_meta(tmp_path, yml))
    for phrase in phrases:
        assert phrase in str(raised.value), str(raised.value)


FACTS = DataFacts(
    first_invoice_at=datetime(2010, 12, 1, 8, 26),
    last_invoice_at=datetime(2011, 12, 9, 12, 50),
    customer_first_purchases=[datetime(2010, 12, 1 + i % 28, 9) for i in range(200)],
    customer_second_purchase_days=[datetime(2011, 1, 1 + i % 28, 9) for i in range(100)],
)


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        ({"clv_calibration_end": "2011-10-01"}, "leaves a holdout that ends 2011-12-31 00:00"),
        # an unquoted date in --vars is a YAML date; it is shown as written
        ({"rfm_as_of": date(2011, 12, 11)}, "var rfm_as_of = '2011-12-11' is after the data ends"),
        (
            {"clv_monthly_discount_rate": 1.5},
            "clv_monthly_discount_rate = 1.5: Input should be less than 1; valid: a number at"
            " least 0 and below 1",
        ),
        # every numeric var's message says its whole range, whichever bound was crossed
        (
            {"top_products_n": 0},
            "var top_products_n = 0: Input should be greater than or equal to 1; valid: an"
            " integer at least 1 and at most 10,000",
        ),
        ({"history_churn_days": True}, "valid: an integer at least 1 and at most 3,650"),
        ({"clv_monthly_discount_rate": "1%"}, "clv_monthly_discount_rate = '1%'"),
        (
            {"clv_monthly_discount_rate": float("nan")},
            "var clv_monthly_discount_rate = nan: not a finite number",
        ),
        ({"rfm_as_of": "2011-12-11"}, "after the data ends"),
        ({"new_customer_cutoff": "2011-12-05"}, "no customer who first bought on or after it"),
        # enough customers to segment, but no repeat purchases for the value fit to model
        (
            {"rfm_as_of": "2010-12-20", "new_customer_cutoff": "2010-12-10"},
            "var rfm_as_of = '2010-12-20' leaves 0 customers with purchases on two or more days"
            " before it; the customer value fit needs at least 20; valid: from 2011-01-06 00:00 on",
        ),
        (
            {"clv_calibration_end": "2011-01-03"},
            "var clv_calibration_end = '2011-01-03' leaves 8 customers with purchases on two or"
            " more days before it; the customer value evaluation needs at least 20",
        ),
        # YAML reads an unquoted moment with an offset as an aware datetime
        (
            {"rfm_as_of": datetime.fromisoformat("2011-06-01T00:00:00+05:00")},
            "has a time zone; write a date YYYY-MM-DD (midnight)",
        ),
    ],
)
def test_a_var_outside_the_data_or_its_range_is_refused(overrides: dict, phrase: str) -> None:
    values = {**project_var_defaults(PROJECT_ROOT), **overrides}
    with pytest.raises(SettingsError) as raised:
        check_vars_against_data(check_vars(values), values, FACTS)
    assert phrase in str(raised.value), str(raised.value)


def test_every_date_var_problem_is_reported_in_one_run() -> None:
    """A var outside the data does not hide another var's problem (before, the range check
    stopped the run, and the holdout's problem showed only on the next one), and a var outside
    the data gets that one line, not also a count of the customers before it."""
    values = {
        **project_var_defaults(PROJECT_ROOT),
        "rfm_as_of": "2010-11-01",
        "clv_calibration_end": "2011-10-01",
        "new_customer_cutoff": "2010-12-15",  # FACTS' customers all first buy in December
    }
    with pytest.raises(SettingsError) as raised:
        check_vars_against_data(check_vars(values), values, FACTS)
    lines = [line.strip() for line in str(raised.value).splitlines() if "var " in line]
    assert len(lines) == 2, lines
    assert lines[0].startswith("var rfm_as_of = '2010-11-01' is not after the data starts")
    assert lines[1].startswith(
        "var clv_calibration_end = '2011-10-01' leaves a holdout that ends 2011-12-31 00:00"
    )


def test_the_environment_and_the_vars_are_refused_together(tmp_path: Path) -> None:
    """A bad environment variable does not hide a bad var (each stage used to stop the run);
    both are refused before the raw file is looked for."""
    environ = {
        "RETAIL_DUCKDB_MEMORY_LIMIT": "lots",
        "RETAIL_RAW_PATH": str(tmp_path / "nowhere.csv.zst"),
        "RETAIL_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
    }
    with pytest.raises(PreflightError) as raised:
        prepare(PROJECT_ROOT, environ, ["build", "--vars", "{top_products_n: 0}"])
    message = str(raised.value)
    assert "RETAIL_DUCKDB_MEMORY_LIMIT = 'lots' is not a memory size" in message
    assert "var top_products_n = 0: Input should be greater than or equal to 1" in message
    assert "nowhere.csv.zst" not in message
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_the_value_holdout_checked_is_the_one_the_meta_block_sets(tmp_path: Path) -> None:
    """A shorter holdout (ml_customer_value_fit meta value.holdout_days) lets a later calibration
    end pass; the check uses what the fit will use, not the default 91 days."""
    yml = (
        "version: 2\nmodels:\n  - name: ml_customer_value_fit\n"
        "    config:\n      meta: {value: {holdout_days: 30}}\n"
    )
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "models" / "_value.yml").write_text(yml)
    holdout_days = check_model_meta(root).settings["ml_customer_value_fit"]["value"].holdout_days
    assert holdout_days == 30
    shipped = check_model_meta(PROJECT_ROOT).settings["ml_customer_value_fit"]["value"]
    assert shipped.holdout_days == 91
    values = {
        **project_var_defaults(PROJECT_ROOT),
        "clv_calibration_end": "2011-11-01",
        "new_customer_cutoff": "2010-12-15",  # FACTS' customers all first buy in December
    }
    check_vars_against_data(check_vars(values), values, FACTS, holdout_days=holdout_days)
    with pytest.raises(SettingsError, match="leaves a holdout that ends 2012-01-31 00:00"):
        check_vars_against_data(check_vars(values), values, FACTS)


def test_data_too_short_for_the_value_holdout_says_no_date_is_valid() -> None:
    """Two months of data: no calibration end leaves both enough customers before it and a full
    holdout after it, so the message says so instead of offering a date before the data."""
    short = DataFacts(
        first_invoice_at=datetime(2010, 12, 1, 8, 26),
        last_invoice_at=datetime(2011, 1, 31, 17, 0),
        customer_first_purchases=FACTS.customer_first_purchases,
        customer_second_purchase_days=FACTS.customer_second_purchase_days,
    )
    values = {
        **project_var_defaults(PROJECT_ROOT),
        "rfm_as_of": "2011-02-01",
        "new_customer_cutoff": "2011-01-15",
        "clv_calibration_end": date(2011, 1, 10),
    }
    with pytest.raises(SettingsError) as raised:
        check_vars_against_data(check_vars(values), values, short)
    (line,) = [line for line in str(raised.value).splitlines() if "clv_calibration_end =" in line]
    assert "var clv_calibration_end = '2011-01-10' leaves a holdout that ends 2011-04-11" in line
    assert "no value is valid for this data (2010-12-01 08:26 to 2011-02-01 00:00)" in line
    assert "valid: up to" not in line, line


def test_vars_from_the_command_line_are_parsed_and_the_rest_passed_on() -> None:
    parsed, rest = parse_cli_vars(["--select", "x", "--vars", "{rfm_as_of: 2011-06-01}", "-q"])
    assert str(parsed["rfm_as_of"]) == "2011-06-01" and rest == ["--select", "x", "-q"]
    with pytest.raises(SettingsError, match="is not a mapping"):
        parse_cli_vars(["--vars=[1, 2]"])
    # an unquoted date that does not exist fails in YAML itself: a message, not a traceback
    with pytest.raises(SettingsError, match=r"holds a date that does not exist \(month must be"):
        parse_cli_vars(["--vars", "{rfm_as_of: 2011-13-01}"])
    # dbt would silently keep only the last --vars
    with pytest.raises(SettingsError, match="--vars is given twice"):
        parse_cli_vars(["--vars", "{rfm_as_of: 2011-06-01}", "--vars={clv_months: 6}"])
    # and YAML the last of a key given twice in one mapping
    with pytest.raises(SettingsError, match=r"does not parse \(the var rfm_as_of is given twice"):
        parse_cli_vars(
            ["--vars", "{rfm_as_of: 2011-06-01, top_products_n: 5, rfm_as_of: 2011-07-01}"]
        )
    # only plain YAML values: no Python objects
    with pytest.raises(SettingsError, match="could not determine a constructor"):
        parse_cli_vars(["--vars", "{rfm_as_of: !!python/object/apply:os.getcwd []}"])


@pytest.mark.parametrize(
    ("written", "read_as"),
    [("050", "40"), ("0b110", "6"), ("0x1F", "31"), ("1:30", "90"), ("1:30.5", "90.5")],
)
def test_a_number_yaml_reads_otherwise_than_written_is_refused(written: str, read_as: str) -> None:
    """YAML 1.1, which dbt reads --vars with too, takes 050 as octal 40 and 1:30 as base 60 (90):
    the build would run with a value the user did not write. Decimal numbers pass as written."""
    with pytest.raises(SettingsError) as raised:
        parse_cli_vars(["--vars", f"{{history_churn_days: {written}}}"])
    assert f"{written} is read by YAML (and dbt) as {read_as}, not as written" in str(raised.value)
    parsed, _rest = parse_cli_vars(
        [
            "--vars",
            "{history_churn_days: 90, top_products_n: 1_000, clv_monthly_discount_rate: 0.5}",
        ]
    )
    assert parsed == {
        "history_churn_days": 90,
        "top_products_n": 1000,
        "clv_monthly_discount_rate": 0.5,
    }


def test_a_build_as_of_before_the_data_ends_says_what_is_not_as_of_it() -> None:
    """prepare prints a note (PreparedBuild.notes) when rfm_as_of is before the data ends: the
    interest categories read every line, and the fits' windows may lie after rfm_as_of."""
    defaults = project_var_defaults(PROJECT_ROOT)
    assert as_of_notes(check_vars(defaults), FACTS, 91) == ()  # as of the end: nothing to say
    earlier = check_vars({**defaults, "rfm_as_of": "2011-06-01"})
    (note,) = as_of_notes(earlier, FACTS, 91)
    assert note.startswith("rfm_as_of 2011-06-01 00:00 is before the data ends (2011-12-09 12:50)")
    assert "customer_interests (the interest in customer_segments) reads every line" in note
    assert "the interest fit trains on orders up to new_customer_cutoff" in note
    assert "ml.clv_evaluation scores a holdout that ends 2011-12-09" in note
    consistent = check_vars(
        {
            **defaults,
            "rfm_as_of": "2011-06-01",
            "new_customer_cutoff": "2011-04-01",
            "clv_calibration_end": "2011-03-01",
        }
    )
    (note,) = as_of_notes(consistent, FACTS, 91)
    assert "after it" not in note, note


def test_the_stamp_records_each_fits_meta_without_its_var_fed_keys(tmp_path: Path) -> None:
    """prepare stamps what it checked of every fit's meta block; the var-fed keys are left out
    (the vars are stamped and checked on their own), the rest is sorted JSON, which the dbt hook
    renders the same way from the parsed project."""
    yml = (
        "version: 2\nmodels:\n  - name: ml_customer_value_fit\n    config:\n      meta:\n"
        "        rfm_as_of: \"{{ var('rfm_as_of') | string }}\"\n"
        "        value: {holdout_days: 30, clv_months: 6}\n"
    )
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "models" / "_value.yml").write_text(yml)
    by_model = {entry["model"]: entry for entry in check_model_meta(root).fingerprints}
    value = by_model["ml_customer_value_fit"]
    assert value["json"] == '{"value": {"clv_months": 6, "holdout_days": 30}}'
    assert "rfm_as_of" in value["passthrough"]
    assert by_model["ml_segmentation_tsne_fit"]["json"] == "{}"  # no block: nothing set


@pytest.mark.parametrize(
    "name", ["RETAIL_RAW_PATH", "RETAIL_DUCKDB_PATH", "RETAIL_SERVING_DIR", "RETAIL_LANDING_DIR"]
)
def test_a_path_variable_set_but_empty_is_refused(name: str) -> None:
    """Empty is not unset: an empty RETAIL_RAW_PATH must not quietly build the default file."""
    with pytest.raises(SettingsError, match=f"{name} is set but empty; unset it or give a path"):
        check_environment({name: " "})
    check_environment({})


@pytest.mark.parametrize("value", [":memory:", "md:retail"])
def test_a_warehouse_that_is_no_file_is_refused(value: str) -> None:
    """DuckDB would take these as an in-memory or a remote database (or create a file named
    ':memory:'); the build and the serving copy need a file."""
    with pytest.raises(SettingsError, match=f"RETAIL_DUCKDB_PATH = '{value}' is not a file path"):
        check_environment({"RETAIL_DUCKDB_PATH": value})


def test_a_warehouse_file_name_with_a_quote_is_refused() -> None:
    """dbt-duckdb quotes the database name (the file's stem) unescaped; folders may hold one."""
    for name in ("w'h", 'w"h'):
        with pytest.raises(SettingsError, match=r"holds a quote .* e\.g\. /d/it/wh\.duckdb"):
            check_environment({"RETAIL_DUCKDB_PATH": f"/d/it/{name}.duckdb"})
    check_environment({"RETAIL_DUCKDB_PATH": "/d/it's/wh.duckdb"})


def test_vars_under_the_projects_name_override_the_global_ones(tmp_path: Path) -> None:
    """dbt applies the vars under the project's own name over the global ones (a package's
    mapping is that package's): prepare checks those same values, so a bad one is named as such
    instead of the dbt hook saying it was checked as another value."""
    (tmp_path / "dbt_project.yml").write_text(
        "name: retail_segments\nvars:\n  top_products_n: 50\n  history_churn_days: 180\n"
        "  retail_segments: {top_products_n: 0}\n  dbt_project_evaluator: {documentation: 1}\n"
    )
    defaults = project_var_defaults(tmp_path)
    assert defaults == {"top_products_n": 0, "history_churn_days": 180}
    with pytest.raises(SettingsError, match="var top_products_n = 0: Input should be greater"):
        check_vars(defaults)

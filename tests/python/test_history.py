"""Unit tests of the backfill's month-end arithmetic and input checks, and of the history scoring
and retraining-stability functions (no dbt)."""

from __future__ import annotations

import contextlib
import signal
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dbt.cli.main import dbtRunnerResult
from dbt_helpers import interrupted_query
from sklearn.tree import DecisionTreeClassifier

from retail_segments.ml.artifacts import serialize_model
from retail_segments.ml.classifier import assign_segments
from retail_segments.ml.history import (
    changed_share,
    classify_history,
    measure_retraining_stability,
    previous_versions,
    retraining_stability,
    score_segment_history,
)
from retail_segments.ops import backfill
from retail_segments.ops.backfill import (
    BackfillError,
    DataWindow,
    as_of_dates,
    month_end,
    month_vars,
    parse_month,
    run_backfill,
)
from retail_segments.ops.settings import parse_cli_vars, var_text

# the real file's window
WINDOW = DataWindow(datetime(2010, 12, 1, 8, 26), datetime(2011, 12, 9, 12, 50))


def test_a_month_ends_at_midnight_after_its_last_day() -> None:
    assert month_end(date(2010, 12, 1)) == datetime(2011, 1, 1)
    assert month_end(date(2011, 2, 1)) == datetime(2011, 3, 1)
    assert month_end(date(2011, 11, 1)) == datetime(2011, 12, 1)


def test_default_range_is_every_month_the_data_covers() -> None:
    dates = as_of_dates(WINDOW)
    assert dates[0] == datetime(2011, 1, 1)
    assert dates[-1] == datetime(2011, 12, 1)
    assert len(dates) == 12
    assert WINDOW.latest_as_of == datetime(2011, 12, 10)


def test_a_range_gives_one_as_of_per_month_both_ends_included() -> None:
    assert as_of_dates(WINDOW, "2011-03", "2011-05") == [
        datetime(2011, 4, 1),
        datetime(2011, 5, 1),
        datetime(2011, 6, 1),
    ]
    assert as_of_dates(WINDOW, "2011-11", "2011-11") == [datetime(2011, 12, 1)]
    assert as_of_dates(WINDOW, start="2011-10") == [datetime(2011, 11, 1), datetime(2011, 12, 1)]


def test_the_last_month_must_be_covered_to_its_end() -> None:
    window = DataWindow(datetime(2011, 1, 5, 9, 0), datetime(2011, 3, 31, 23, 59))
    assert as_of_dates(window)[-1] == datetime(2011, 4, 1)
    window = DataWindow(datetime(2011, 1, 5, 9, 0), datetime(2011, 3, 30, 10, 0))
    assert as_of_dates(window)[-1] == datetime(2011, 3, 1)


@pytest.mark.parametrize(
    ("start", "end", "phrases"),
    [
        ("2011-13", None, ["--start '2011-13' is not a month", "YYYY-MM"]),
        ("11-2011", None, ["--start '11-2011' is not a month"]),
        (None, "2011/05", ["--end '2011/05' is not a month"]),
        ("2010-11", None, ["--start 2010-11 ends (2010-12-01 00:00) before the data starts"]),
        (None, "2011-12", ["--end 2011-12 ends (2012-01-01 00:00) after the data ends"]),
        ("2011-06", "2011-05", ["--start 2011-06 is after --end 2011-05"]),
    ],
)
def test_bad_ranges_are_refused_with_the_reason(
    start: str | None, end: str | None, phrases: list[str]
) -> None:
    with pytest.raises(BackfillError) as raised:
        as_of_dates(WINDOW, start, end)
    for phrase in phrases:
        assert phrase in str(raised.value)


def test_out_of_range_errors_name_the_valid_months() -> None:
    with pytest.raises(BackfillError, match="months with data are 2010-12 to 2011-11"):
        as_of_dates(WINDOW, end="2012-01")


def test_parse_month_accepts_surrounding_spaces_only() -> None:
    assert parse_month(" 2011-06 ", "--start") == date(2011, 6, 1)
    for text in ("2011-6", "0000-01", "2011-00"):
        with pytest.raises(BackfillError, match="is not a month"):
            parse_month(text, "--start")


class _ByRecency:
    """A stand-in classifier: 'recent' below a recency threshold, 'lapsed' otherwise."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.where(features["recency_days"] < self.threshold, "recent", "lapsed")


def _rfm(recency: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": range(1, len(recency) + 1),
            "recency_days": recency,
            "frequency": 1,
            "monetary": 10.0,
            "rfm_as_of": pd.Timestamp("2011-12-01"),
        }
    )


def test_classify_history_scores_every_row_with_one_version() -> None:
    history = pd.concat(
        [
            _rfm([5, 50]).assign(rfm_as_of=pd.Timestamp("2011-12-01")),
            _rfm([40, 80]).assign(rfm_as_of=pd.Timestamp("2011-11-01")),
        ]
    )
    scored = classify_history(history, _ByRecency(45), "v1")
    assert scored.columns.tolist() == ["customer_id", "rfm_as_of", "segment_name", "model_version"]
    assert scored.rfm_as_of.dt.month.tolist() == [11, 11, 12, 12]
    assert scored.segment_name.tolist() == ["recent", "lapsed", "recent", "lapsed"]
    assert set(scored.model_version) == {"v1"}
    assert classify_history(history.iloc[:0], _ByRecency(45), "v1").empty


def test_history_and_current_segments_differ_only_where_the_classifier_misses_the_cluster() -> None:
    """By design (docs/history.md): marts.customer_segments keeps a clustered customer's cluster,
    the history scores every customer with the classifier, also at the build's own date. They
    disagree exactly on the clustered customers the classifier places elsewhere (customer 2
    here; on the real file 8, the classifier's test-split errors); an unclustered customer
    (customer 4, an outlier) is classified in both."""
    rfm = _rfm([5, 30, 50, 70])
    clusters = pd.DataFrame(
        {"customer_id": [1, 2, 3], "segment_name": ["recent", "lapsed", "lapsed"]}
    )
    current = assign_segments(rfm, clusters, _ByRecency(45))
    history = classify_history(rfm, _ByRecency(45), "v1")
    assert current.assignment_method.tolist() == [*["clustered"] * 3, "classified"]
    assert current.segment_name.tolist() == ["recent", "lapsed", "lapsed", "lapsed"]
    assert history.segment_name.tolist() == ["recent", "recent", "lapsed", "lapsed"]
    differs = current.segment_name.to_numpy() != history.segment_name.to_numpy()
    assert current.customer_id[differs].tolist() == [2]


def test_changed_share_counts_customers_whose_prediction_differs() -> None:
    rfm = _rfm([10, 30, 50, 70])
    assert changed_share(rfm, _ByRecency(40), _ByRecency(60)) == (4, 1, 1)
    assert changed_share(rfm, _ByRecency(40), _ByRecency(40)) == (4, 0, 0)
    assert changed_share(rfm.iloc[:0], _ByRecency(40), _ByRecency(60)) == (0, 0, 0)


class _Swapped(_ByRecency):
    """_ByRecency with its two names swapped: every prediction differs, no boundary moved."""

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        names = super().predict(features)
        return np.where(names == "recent", "lapsed", "recent")


def test_changed_share_separates_renamed_segments_from_moved_boundaries() -> None:
    rfm = _rfm([10, 30, 50, 70])
    assert changed_share(rfm, _ByRecency(40), _Swapped(40)) == (4, 4, 0)
    # swapped names and a boundary moved from 40 to 60: the customer at 50 moved for real
    assert changed_share(rfm, _ByRecency(40), _Swapped(60)) == (4, 3, 1)


def _registry(windows: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_version": list(windows),
            "data_window_end": pd.to_datetime(list(windows.values())),
            "artifact": [version.encode() for version in windows],
        }
    )


def test_previous_versions_are_those_of_the_window_just_before() -> None:
    registry = _registry(
        {"oct": "2011-10-01", "nov_b": "2011-11-01", "nov_a": "2011-11-01", "dec": "2011-12-01"}
    )
    assert previous_versions(registry, "dec").model_version.tolist() == ["nov_a", "nov_b"]
    assert previous_versions(registry, "nov_a").model_version.tolist() == ["oct"]
    assert previous_versions(registry, "oct").empty
    with pytest.raises(ValueError, match="'jan' is not in the registry"):
        previous_versions(registry, "jan")


def test_retraining_stability_compares_current_with_the_previous_window() -> None:
    registry = _registry({"oct": "2011-10-01", "nov": "2011-11-01", "dec": "2011-12-01"})
    thresholds = {b"oct": 20.0, b"nov": 40.0, b"dec": 60.0}
    stability = retraining_stability(
        _rfm([10, 30, 50, 70]), registry, "dec", load=lambda blob: _ByRecency(thresholds[blob])
    )
    row = stability.iloc[0]
    assert len(stability) == 1
    assert (row.model_version, row.previous_model_version) == ("dec", "nov")
    assert (row.n_customers, row.n_changed, row.share_changed) == (4, 1, 0.25)
    assert (row.n_changed_after_renaming, row.share_changed_after_renaming) == (1, 0.25)
    assert row.previous_data_window_end == pd.Timestamp("2011-11-01")
    assert row.scored_as_of == pd.Timestamp("2011-12-01")
    first = retraining_stability(_rfm([10]), registry, "oct", load=lambda blob: _ByRecency(0))
    assert first.empty
    assert first.columns.tolist() == list(stability.columns)


def test_retraining_stability_loads_real_artifacts_through_the_allowlist() -> None:
    x = pd.DataFrame({"recency_days": [1.0, 90.0], "frequency": 1.0, "monetary": 1.0})
    recent = DecisionTreeClassifier(random_state=0).fit(x, ["recent", "lapsed"])
    swapped = DecisionTreeClassifier(random_state=0).fit(x, ["lapsed", "recent"])
    registry = _registry({"old": "2011-11-01", "new": "2011-12-01"})
    registry["artifact"] = [serialize_model(recent), serialize_model(swapped)]
    stability = retraining_stability(_rfm([1, 90, 2]), registry, "new")
    assert stability.iloc[0][["n_customers", "n_changed"]].tolist() == [3, 3]
    assert stability.iloc[0]["n_changed_after_renaming"] == 0


def test_the_dbt_models_score_with_the_fits_version_from_registry_rows() -> None:
    """score_segment_history and measure_retraining_stability take the frames the dbt models
    read: the fit's row names the current version, the registry rows (other model names among
    them, artifacts as DuckDB returns BLOBs) hold the estimators."""
    x = pd.DataFrame({"recency_days": [1.0, 90.0], "frequency": 1.0, "monetary": 1.0})
    recent = DecisionTreeClassifier(random_state=0).fit(x, ["recent", "lapsed"])
    swapped = DecisionTreeClassifier(random_state=0).fit(x, ["lapsed", "recent"])
    registry = _registry({"old": "2011-11-01", "new": "2011-12-01", "other": "2011-11-20"})
    registry["model_name"] = ["segment_classifier", "segment_classifier", "interest_classifier"]
    registry["artifact"] = [
        bytearray(serialize_model(recent)),
        bytearray(serialize_model(swapped)),
        bytearray(b"never loaded"),
    ]
    fit = pd.DataFrame({"model_version": ["new"]})

    history = score_segment_history(_rfm([1, 90]), fit, registry)
    assert history.segment_name.tolist() == ["lapsed", "recent"]
    assert set(history.model_version) == {"new"}
    published = pd.DataFrame({"model_version": ["old"]})
    stability = measure_retraining_stability(_rfm([1, 90, 2]), fit, registry, published)
    assert stability[["model_version", "previous_model_version", "n_changed"]].values.tolist() == [
        ["new", "old", 3]
    ]
    # a model registered by a build that then failed (never published) is no previous model, even
    # when its window is the latest before the current one; published, it is
    failed = _registry({"failed": "2011-11-25"}).assign(
        model_name="segment_classifier", artifact=[bytearray(serialize_model(recent))]
    )
    with_failed = pd.concat([registry, failed], ignore_index=True)
    again = measure_retraining_stability(_rfm([1, 90, 2]), fit, with_failed, published)
    assert again.previous_model_version.tolist() == ["old"]
    both = pd.DataFrame({"model_version": ["old", "failed"]})
    assert measure_retraining_stability(
        _rfm([1, 90, 2]), fit, with_failed, both
    ).previous_model_version.tolist() == ["failed"]
    first = measure_retraining_stability(
        _rfm([1]), pd.DataFrame({"model_version": ["old"]}), registry, published
    )
    assert first.empty
    with pytest.raises(ValueError, match="one row"):
        score_segment_history(_rfm([1]), fit.iloc[:0], registry)


def test_a_month_end_is_built_with_the_vars_of_the_last_whole_build() -> None:
    """The backfill's --vars: the recorded vars (as dbt rendered them) read back by YAML to the
    same values, with rfm_as_of the month end; a history built with other vars (churn days)
    would otherwise be replaced by one with the defaults."""
    recorded = {
        "rfm_as_of": "2011-12-10",
        "history_churn_days": "90",
        "retraining_max_changed_share": "0.2",
        "new_customer_cutoff": "2011-10-01 12:30:00",
        "clv_calibration_end": "2011-09-09",
    }
    parsed, rest = parse_cli_vars(["--vars", month_vars(recorded, datetime(2011, 7, 1))])
    assert rest == []
    assert {name: var_text(value) for name, value in parsed.items()} == {
        **recorded,
        "rfm_as_of": "2011-07-01",
    }


class _DbtStoppedAt:
    """A stand-in for dbt's ``dbtRunner`` that is stopped by Ctrl-C at one command: dbt returns
    the ``KeyboardInterrupt`` as its result's exception; the commands before it succeed."""

    def __init__(self, stop_at: str, calls: list[str]) -> None:
        self.stop_at, self.calls = stop_at, calls

    def __call__(self, manifest: object = None) -> _DbtStoppedAt:
        return self

    def invoke(self, args: list[str]) -> dbtRunnerResult:
        self.calls.append(args[0])
        if args[0] == self.stop_at:
            return dbtRunnerResult(success=False, exception=KeyboardInterrupt())
        return dbtRunnerResult(success=True, result=None)


@pytest.mark.parametrize("stop_at", ["parse", "build"])
def test_a_backfill_stopped_by_ctrl_c_is_stopped_not_failed(
    stop_at: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while dbt parses or builds a month ends the backfill as a stop (the command says
    "interrupted", exit 130), not as a project that did not parse or a month that failed."""
    calls: list[str] = []
    monkeypatch.setattr("dbt.cli.main.dbtRunner", _DbtStoppedAt(stop_at, calls))
    monkeypatch.setattr(backfill, "prepare", lambda *args, **kwargs: None)
    with pytest.raises(KeyboardInterrupt):
        run_backfill([month_end(date(2011, 6, 1)), month_end(date(2011, 7, 1))], {}, Path("."))
    assert calls[-1] == stop_at
    assert "error" not in capsys.readouterr().err


class _DbtSwallowingCtrlC(_DbtStoppedAt):
    """A stand-in for ``dbtRunner`` that receives Ctrl-C while building a month and goes on as
    dbt does when it lands in a finalizer (Python prints "Exception ignored"):
    the month succeeds."""

    def invoke(self, args: list[str]) -> dbtRunnerResult:
        self.calls.append(args[0])
        if args[0] == self.stop_at:
            with contextlib.suppress(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        return dbtRunnerResult(success=True, result=None)


def test_a_ctrl_c_dbt_did_not_stop_on_still_stops_the_backfill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C dbt swallowed stops the backfill before its next month, not after every month
    (the command would then call a whole backfill "interrupted"); Ctrl-C is Python's again after."""
    calls: list[str] = []
    monkeypatch.setattr("dbt.cli.main.dbtRunner", _DbtSwallowingCtrlC("build", calls))
    monkeypatch.setattr(backfill, "prepare", lambda *args, **kwargs: None)
    months = [month_end(date(2011, month, 1)) for month in (6, 7, 8)]
    # Ctrl-C as in the backfill's own process (a test before may have left another handler in
    # this one: PySpark installs its own)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_backfill(months, {}, Path("."))
        assert calls == ["parse", "build"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_a_month_is_prepared_stops_the_backfill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C during a month's checks (DuckDB queries, which DuckDB ends with its own "Query
    interrupted" error) is a stop, not a stack trace."""
    calls: list[str] = []
    monkeypatch.setattr("dbt.cli.main.dbtRunner", _DbtStoppedAt("none", calls))
    monkeypatch.setattr(backfill, "prepare", lambda *args, **kwargs: interrupted_query())
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_backfill([month_end(date(2011, 6, 1)), month_end(date(2011, 7, 1))], {}, Path("."))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls == ["parse"]

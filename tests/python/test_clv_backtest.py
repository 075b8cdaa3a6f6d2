"""The customer value backtest (retail_segments_dev.clv_backtest): its folds never see past their
horizon, its candidate models reduce to the production model where they should, and it runs end
to end on a small warehouse-like set of lines."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from retail_segments.ml.value import (
    BASELINE_NAME,
    MODEL_NAME,
    BgNbdParams,
    GammaGammaParams,
    bg_nbd_expected_purchases,
    bg_nbd_log_likelihood,
    fit_bg_nbd,
)
from retail_segments_dev import clv_backtest as cb
from retail_segments_dev.clv_simulation import simulate_customers

CALIBRATION_END = pd.Timestamp("2011-09-09")
PARAMS = BgNbdParams(r=0.8, alpha=60.0, a=0.6, b=4.0)


def _lines(n_customers: int = 400, seed: int = 0) -> pd.DataFrame:
    """Sales lines of customers who buy on random days of 2011 at their own rate; a tenth of the
    lines are partly returned some days later."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2010-12-01")
    rows = []
    for customer in range(n_customers):
        first = rng.integers(0, 300)
        rate = rng.gamma(0.8, 1 / 40)
        days = [first, *(first + np.cumsum(rng.exponential(1 / rate, 20)).astype(int))]
        for day in sorted({d for d in days if d < 374}):
            gross = float(rng.gamma(2.0, 150.0))
            returned = rng.random() < 0.1
            rows.append(
                {
                    "customer_id": customer,
                    "invoice_at": start + pd.Timedelta(days=int(day), hours=10),
                    "gross_value": gross,
                    "net_value": gross * (0.5 if returned else 1.0),
                    "canceled_at": start + pd.Timedelta(days=int(day) + 20) if returned else pd.NaT,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    return _lines()


def test_folds_end_on_or_before_the_calibration_end() -> None:
    origins = cb.fold_origins(CALIBRATION_END, 91, 2)
    assert origins == [pd.Timestamp("2011-06-10"), pd.Timestamp("2011-03-11")]
    with pytest.raises(cb.BacktestError, match="folds and horizon must be >= 1"):
        cb.fold_origins(CALIBRATION_END, 91, 0)


def test_a_fold_sees_nothing_after_its_horizon_and_values_lines_as_known_at_its_origin(
    lines: pd.DataFrame,
) -> None:
    origin = pd.Timestamp("2011-06-10")
    seen = cb.fold_lines(lines, origin, 91)
    assert seen["invoice_at"].max() < origin + pd.Timedelta(days=91)
    returned_before = seen["canceled_at"] < origin
    assert returned_before.any() and (~returned_before & seen["canceled_at"].notna()).any()
    known = seen["value_known"]
    assert np.allclose(known[returned_before], seen.loc[returned_before, "net_value"])
    assert np.allclose(known[~returned_before], seen.loc[~returned_before, "gross_value"])


def test_lines_after_the_horizon_cannot_change_a_fold(lines: pd.DataFrame) -> None:
    origin = pd.Timestamp("2011-03-11")
    end = origin + pd.Timedelta(days=91)
    altered = lines.copy()
    later = altered["invoice_at"] >= end
    assert later.any()
    altered.loc[later, ["gross_value", "net_value"]] *= 100.0
    altered.loc[later, "customer_id"] = altered.loc[later, "customer_id"] % 7
    models = (MODEL_NAME, cb.COVARIATE_NAME)
    before = cb.evaluate_fold(cb.make_fold(lines, origin, 91), models)
    after = cb.evaluate_fold(cb.make_fold(altered, origin, 91), models)
    pd.testing.assert_frame_equal(before.metrics, after.metrics)
    # a line inside the horizon, of a customer seen before the origin, does change it
    known = altered.loc[altered["invoice_at"] < origin, "customer_id"]
    inside = (
        (altered["invoice_at"] >= origin)
        & (altered["invoice_at"] < end)
        & altered["customer_id"].isin(known)
    )
    altered.loc[inside.idxmax(), "net_value"] += 10_000.0
    changed = cb.evaluate_fold(cb.make_fold(altered, origin, 91), models)
    assert not before.metrics["total_error"].equals(changed.metrics["total_error"])


def test_the_covariate_model_is_the_production_model_in_each_customers_own_clock() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 12, 50).astype(float)
    age = rng.uniform(30, 300, 50)
    t_x = np.where(x > 0, age * rng.uniform(0.1, 1.0, 50), 0.0)
    z = rng.normal(size=50)
    gamma = 0.7
    # gamma = 0: exactly the production likelihood
    assert np.allclose(
        cb.covariate_log_likelihood(PARAMS, 0.0, z, x, t_x, age),
        bg_nbd_log_likelihood(PARAMS, x, t_x, age),
    )
    # otherwise: each customer's BG/NBD with alpha_i = alpha exp(-gamma z_i), row by row
    scale = np.exp(-gamma * z)
    direct = [
        bg_nbd_log_likelihood(
            BgNbdParams(r=PARAMS.r, alpha=PARAMS.alpha * c, a=PARAMS.a, b=PARAMS.b), xi, ti, ai
        )
        for c, xi, ti, ai in zip(scale, x, t_x, age, strict=True)
    ]
    assert np.allclose(cb.covariate_log_likelihood(PARAMS, gamma, z, x, t_x, age), direct)
    own_clock = bg_nbd_expected_purchases(PARAMS, 91 / scale, x, t_x / scale, age / scale)
    direct_expected = [
        bg_nbd_expected_purchases(
            BgNbdParams(r=PARAMS.r, alpha=PARAMS.alpha * c, a=PARAMS.a, b=PARAMS.b), 91, xi, ti, ai
        )
        for c, xi, ti, ai in zip(scale, x, t_x, age, strict=True)
    ]
    assert np.allclose(own_clock, direct_expected, rtol=1e-10)


def test_two_identical_classes_are_one_class() -> None:
    x = np.array([0.0, 1.0, 4.0, 9.0])
    t_x = np.array([0.0, 20.0, 150.0, 240.0])
    age = np.array([100.0, 200.0, 250.0, 260.0])
    one_class = [np.log(PARAMS.r), np.log(PARAMS.alpha)]
    theta = np.array([0.3, *one_class, *one_class, np.log(PARAMS.a), np.log(PARAMS.b)])
    stacked = cb.two_class_log_likelihood(theta, x, t_x, age)
    assert np.allclose(stacked[0], bg_nbd_log_likelihood(PARAMS, x, t_x, age))


def test_the_covariate_fit_recovers_the_effect_of_spend_on_the_rate() -> None:
    """Customers simulated in their own clocks (rate Gamma(r, alpha exp(-gamma z))) with gamma
    0.6; the spend covariate is built from z, and the fit finds gamma back."""
    n, gamma = 4000, 0.6
    rng = np.random.default_rng(3)
    z = rng.normal(size=n)
    scale = np.exp(-gamma * z)
    age = rng.uniform(60, 360, n)
    own = simulate_customers(PARAMS, GammaGammaParams(p=2.0, q=3.0, v=300.0), age / scale, seed=4)
    summary = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "frequency": own["frequency"],
            "recency": own["recency"] * scale,
            "T": age,
            "total_spend": np.exp(5.0 + z) * (own["frequency"] + 1),
        }
    )
    start = fit_bg_nbd(summary["frequency"], summary["recency"], summary["T"])
    fit = cb.covariate_purchases(summary, 91, start)
    assert fit.parameters["gamma"] == pytest.approx(gamma, abs=0.1)
    assert fit.parameters["r"] == pytest.approx(PARAMS.r, rel=0.2)


def test_the_backtest_scores_every_model_on_every_fold(lines: pd.DataFrame) -> None:
    result = cb.backtest(lines, CALIBRATION_END, 91, 2)
    expected = {
        (origin, model, target)
        for origin in cb.fold_origins(CALIBRATION_END, 91, 2)
        for model in (*cb.CANDIDATES, BASELINE_NAME)
        for target in ("purchases", "spend")
    }
    metrics = result.metrics
    keys = set(zip(metrics["origin"], metrics["model"], metrics["target"], strict=True))
    assert keys == expected and len(result.metrics) == len(expected)
    assert np.isfinite(result.metrics["rmse"]).all()
    # the two-class model nests the production model: its likelihood is at least as high
    fits = result.fits.set_index(["origin", "model"])["log_likelihood"]
    for origin in cb.fold_origins(CALIBRATION_END, 91, 2):
        assert fits[(origin, cb.TWO_CLASS_NAME)] >= fits[(origin, MODEL_NAME)] - 1e-3
        assert fits[(origin, cb.COVARIATE_NAME)] >= fits[(origin, MODEL_NAME)] - 1e-3
    verdict = cb.verdict(result.metrics)
    assert list(verdict["model"]) == list(cb.CANDIDATES)
    assert not verdict.loc[verdict["model"] == MODEL_NAME, "beats_production_on_every_fold"].any()


def test_verdict_applies_the_rule_on_every_fold() -> None:
    def rows(origin: str, model: str, purchases: tuple[float, float], spend: tuple[float, float]):
        return [
            {
                "origin": pd.Timestamp(origin),
                "model": model,
                "target": "purchases",
                "rmse": purchases[0],
                "pearson": purchases[1],
                "auc_no_purchase": 0.75,
            },
            {
                "origin": pd.Timestamp(origin),
                "model": model,
                "target": "spend",
                "rmse": spend[0],
                "pearson": spend[1],
                "auc_no_purchase": np.nan,
            },
        ]

    metrics = pd.DataFrame(
        rows("2011-06-10", MODEL_NAME, (1.2, 0.80), (1500, 0.87))
        + rows("2011-06-10", BASELINE_NAME, (1.3, 0.75), (1300, 0.86))
        + rows("2011-06-10", "better", (1.1, 0.81), (1200, 0.90))
        + rows("2011-06-10", "mixed", (1.1, 0.81), (1400, 0.86))
        + rows("2011-03-11", MODEL_NAME, (1.4, 0.77), (1600, 0.79))
        + rows("2011-03-11", BASELINE_NAME, (1.5, 0.75), (1400, 0.82))
        + rows("2011-03-11", "better", (1.3, 0.78), (1350, 0.85))
        + rows("2011-03-11", "mixed", (1.3, 0.78), (1550, 0.80))
    )
    verdict = cb.verdict(metrics).set_index("model")
    assert verdict.loc["better"].tolist() == [True, True]
    assert verdict.loc["mixed"].tolist() == [False, False]
    assert verdict.loc[MODEL_NAME].tolist() == [False, False]


def test_without_a_built_warehouse_it_says_to_build_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cb.main(["--warehouse", str(tmp_path / "missing.duckdb")]) == 2
    assert "run `make build` first" in capsys.readouterr().err
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    assert cb.main(["--warehouse", str(empty)]) == 2
    assert "has no customer value tables" in capsys.readouterr().err

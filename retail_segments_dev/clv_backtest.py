"""Rolling-origin backtest of the customer value model inside the calibration window.

``python -m retail_segments_dev.clv_backtest`` (after ``make build``) reads the built warehouse's
sales lines and answers one question without touching ``ml.clv_evaluation``'s holdout: would an
extension of the production model (BG/NBD + Gamma-Gamma, `retail_segments.ml.value`) predict the
next ``horizon`` days better, on folds that end on or before ``clv_calibration_end``?

Folds. Origin ``o_k = calibration_end - k * horizon`` for ``k = 1 .. folds`` (on the real file
2011-06-10 and 2011-03-11 for a 91-day horizon). A fold sees only the lines before ``o_k +
horizon <= calibration_end`` (`fold_lines`): the fit gets the lines before ``o_k`` valued as known
at ``o_k`` (returns made later do not reduce them, as in the build), and the ``horizon`` days
after ``o_k`` are the actuals (net of every return, as in the build's evaluation).

Candidates (each a purchase model; spend per purchase day is the production Gamma-Gamma's):

- ``bg_nbd_gamma_gamma``: the production model.
- ``bg_nbd_two_class``: BG/NBD whose purchase rates come from a mixture of two Gamma
  distributions (latent classes, e.g. wholesale and retail) with the dropout process shared.
- ``bg_nbd_spend_covariate``: BG/NBD with a time-invariant covariate (Fader and Hardie 2007,
  "Incorporating time-invariant covariates into the Pareto/NBD and BG/NBD models"):
  ``alpha_i = alpha exp(-gamma z_i)``, ``z_i`` the standardised log mean spend per purchase day
  before the origin, so customers who spend more per day may buy more often.

and the issue's ``naive_rate`` baseline. Each fold prints the metrics of ``ml.clv_evaluation``
(`retail_segments.ml.value.evaluation_table`) and each purchase model's log-likelihood and BIC.
The rule, fixed before the first run: a candidate replaces the production model only if, on every
fold, it has a lower RMSE and a higher correlation than the production model on both purchases and
spend. Whether any model meets the issue's targets on the folds is printed as well. The holdout of
``ml.clv_evaluation`` (after ``calibration_end``) is printed last for the record; it chooses
nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy import optimize, special

from retail_segments.ml.value import (
    BASELINE_NAME,
    MODEL_NAME,
    BgNbdFit,
    BgNbdParams,
    CustomerValueError,
    bg_nbd_expected_purchases,
    bg_nbd_log_likelihood,
    bg_nbd_prob_no_purchase,
    collapse_summary,
    evaluation_table,
    fit_summary_models,
    gamma_gamma_expected_order_value,
    holdout_actuals,
    repeat_purchase_summary,
)
from retail_segments.ops.paths import find_project_root, warehouse_path

LINE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "invoice_at",
    "gross_value",
    "net_value",
    "canceled_at",
)
TWO_CLASS_NAME = "bg_nbd_two_class"
COVARIATE_NAME = "bg_nbd_spend_covariate"
CANDIDATES: tuple[str, ...] = (MODEL_NAME, TWO_CLASS_NAME, COVARIATE_NAME)
TARGET_AUC = 0.70  # the target for auc_no_purchase
_LOG_BOUND = 20.0
_SEED = 0


class BacktestError(ValueError):
    """A backtest that cannot run: the message says what to change."""


# --------------------------------------------------------------------------------------------
# folds
# --------------------------------------------------------------------------------------------


def fold_origins(
    calibration_end: pd.Timestamp, horizon_days: int, folds: int
) -> list[pd.Timestamp]:
    """``calibration_end - k * horizon_days`` for ``k = 1 .. folds``, latest first."""
    if folds < 1 or horizon_days < 1:
        raise BacktestError(
            f"folds and horizon must be >= 1, got folds={folds}, horizon={horizon_days}"
        )
    return [calibration_end - pd.Timedelta(days=k * horizon_days) for k in range(1, folds + 1)]


def fold_lines(lines: pd.DataFrame, origin: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """The lines a fold may see: invoiced before ``origin + horizon_days``, with ``value_known``
    = their value as known at ``origin`` (net of the returns made before it, gross otherwise)."""
    missing = [column for column in LINE_COLUMNS if column not in lines.columns]
    if missing:
        raise BacktestError(f"the sales lines lack column(s) {missing}")
    end = origin + pd.Timedelta(days=horizon_days)
    seen = lines.loc[lines["invoice_at"] < end].copy()
    returned_before = seen["canceled_at"].notna() & (seen["canceled_at"] < origin)
    seen["value_known"] = np.where(returned_before, seen["net_value"], seen["gross_value"])
    return seen


@dataclass(frozen=True)
class Fold:
    """One fold's calibration summary (as of ``origin``) and holdout actuals."""

    origin: pd.Timestamp
    horizon_days: int
    summary: pd.DataFrame
    actuals: pd.DataFrame


def make_fold(lines: pd.DataFrame, origin: pd.Timestamp, horizon_days: int) -> Fold:
    """The summary of the lines before ``origin`` and the actuals of the ``horizon_days`` after."""
    seen = fold_lines(lines, origin, horizon_days)
    summary = repeat_purchase_summary(
        seen, origin, time_column="invoice_at", amount_column="value_known"
    )
    if summary.empty:
        raise BacktestError(f"no purchase before the fold origin {origin.date()}: use fewer folds")
    actuals = holdout_actuals(
        seen, origin, horizon_days, time_column="invoice_at", amount_column="net_value"
    )
    return Fold(origin, horizon_days, summary, actuals)


# --------------------------------------------------------------------------------------------
# purchase models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseFit:
    """A fitted purchase model: per-customer predictions for the horizon and its likelihood."""

    name: str
    expected_purchases: np.ndarray
    prob_no_purchase: np.ndarray
    log_likelihood: float
    n_parameters: int
    parameters: dict[str, float]


def _summary_columns(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(  # type: ignore[return-value]
        summary[column].to_numpy(dtype="float64") for column in ("frequency", "recency", "T")
    )


def _minimise(objective: Callable[[np.ndarray], float], starts: Sequence[np.ndarray]) -> np.ndarray:
    """The best L-BFGS-B minimum of ``objective`` over ``starts`` (numeric gradients)."""
    best = None
    with np.errstate(all="ignore"):
        for start in starts:
            bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
            result = optimize.minimize(objective, start, method="L-BFGS-B", bounds=bounds)
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
    if best is None:
        raise BacktestError("the likelihood is not finite at any start")
    return np.asarray(best.x)


def production_purchases(summary: pd.DataFrame, horizon_days: int, fit: BgNbdFit) -> PurchaseFit:
    """The production BG/NBD, ``fit`` (`retail_segments.ml.value.fit_summary_models` of the
    summary), scored on the horizon."""
    x, t_x, age = _summary_columns(summary)
    return PurchaseFit(
        MODEL_NAME,
        bg_nbd_expected_purchases(fit.params, horizon_days, x, t_x, age),
        bg_nbd_prob_no_purchase(fit.params, horizon_days, x, t_x, age),
        fit.diagnostics.log_likelihood,
        4,
        fit.params.as_dict(),
    )


def _two_class_params(theta: np.ndarray) -> tuple[np.ndarray, list[BgNbdParams]]:
    """Log class shares and each class's BG/NBD parameters from
    ``[logit share, log r1, log alpha1, log r2, log alpha2, log a, log b]``."""
    log_shares = np.array([-np.logaddexp(0.0, -theta[0]), -np.logaddexp(0.0, theta[0])])
    a, b = np.exp(theta[5:7])
    r_1, alpha_1, r_2, alpha_2 = (float(v) for v in np.exp(theta[1:5]))
    classes = [
        BgNbdParams(r=r_1, alpha=alpha_1, a=a, b=b),
        BgNbdParams(r=r_2, alpha=alpha_2, a=a, b=b),
    ]
    return log_shares, classes


def two_class_log_likelihood(
    theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """Per-row log-likelihood of the two-class model and, stacked, each class's joint term
    (rows ``1..2``: log share + class log-likelihood)."""
    log_shares, classes = _two_class_params(theta)
    joint = np.stack(
        [
            share + bg_nbd_log_likelihood(params, x, t_x, age)
            for share, params in zip(log_shares, classes, strict=True)
        ]
    )
    return np.vstack([special.logsumexp(joint, axis=0), joint])


def two_class_purchases(
    summary: pd.DataFrame, horizon_days: int, production: BgNbdFit
) -> PurchaseFit:
    """BG/NBD with a two-class Gamma mixture of purchase rates, fitted by maximum likelihood on
    the distinct summaries (weighted); predictions average the classes with each customer's
    posterior class probabilities."""
    collapsed = collapse_summary(summary)
    cx, ctx, cage = _summary_columns(collapsed)
    weight = collapsed["weight"].to_numpy(dtype="float64")
    base = production.params.as_dict()  # the starting point
    total = float(weight.sum())

    def objective(theta: np.ndarray) -> float:
        value = -float(np.dot(weight, two_class_log_likelihood(theta, cx, ctx, cage)[0])) / total
        return value if np.isfinite(value) else 1e10

    rng = np.random.default_rng(_SEED)
    a, b = max(base["a"], 1e-3), min(base["b"], 1e3)
    starts = []
    for _ in range(6):
        jitter = rng.normal(0.0, 1.0, 4)
        starts.append(
            np.array(
                [
                    0.0,
                    math.log(base["r"]) + jitter[0],
                    math.log(base["alpha"]) + jitter[1],
                    math.log(base["r"]) + jitter[2],
                    math.log(base["alpha"]) + jitter[3],
                    math.log(a),
                    math.log(b),
                ]
            )
        )
    theta = _minimise(objective, starts)
    x, t_x, age = _summary_columns(summary)
    stacked = two_class_log_likelihood(theta, x, t_x, age)
    posterior = np.exp(stacked[1:] - stacked[0])
    _, classes = _two_class_params(theta)
    expected = sum(
        w * bg_nbd_expected_purchases(params, horizon_days, x, t_x, age)
        for w, params in zip(posterior, classes, strict=True)
    )
    no_purchase = sum(
        w * bg_nbd_prob_no_purchase(params, horizon_days, x, t_x, age)
        for w, params in zip(posterior, classes, strict=True)
    )
    share = float(special.expit(theta[0]))
    return PurchaseFit(
        TWO_CLASS_NAME,
        np.asarray(expected),
        np.asarray(no_purchase),
        -objective(theta) * total,
        7,
        {
            "share_1": share,
            "r_1": classes[0].r,
            "alpha_1": classes[0].alpha,
            "r_2": classes[1].r,
            "alpha_2": classes[1].alpha,
            "a": classes[0].a,
            "b": classes[0].b,
        },
    )


def spend_covariate(summary: pd.DataFrame) -> np.ndarray:
    """The covariate ``z``: log mean spend per purchase day (every day before the origin, days
    worth 1 GBP or less count as 1 GBP), standardised over the customers."""
    days = summary["frequency"].to_numpy(dtype="float64") + 1.0
    level = np.log(np.maximum(summary["total_spend"].to_numpy(dtype="float64") / days, 1.0))
    spread = level.std()
    return (level - level.mean()) / spread if spread > 0 else np.zeros_like(level)


def covariate_log_likelihood(
    params: BgNbdParams,
    gamma: float,
    z: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    age: np.ndarray,
) -> np.ndarray:
    """Per-row log-likelihood of BG/NBD with ``alpha_i = alpha exp(-gamma z_i)``.

    With ``c_i = exp(-gamma z_i)`` a customer's rate is ``Gamma(r, alpha c_i)``, i.e. ``lambda_i
    c_i ~ Gamma(r, alpha)``: the same model in a clock running ``1 / c_i`` times as fast. So the
    likelihood is the production one at ``(t_x / c_i, T / c_i)`` times the Jacobian ``c_i^-x`` of
    the ``x`` purchase times.
    """
    scale = np.exp(-gamma * z)
    return bg_nbd_log_likelihood(params, x, t_x / scale, age / scale) - x * np.log(scale)


def covariate_purchases(
    summary: pd.DataFrame, horizon_days: int, production: BgNbdFit
) -> PurchaseFit:
    """BG/NBD with the spend covariate on the rate's scale, fitted by maximum likelihood;
    predictions in each customer's own clock (horizon ``t / c_i``)."""
    x, t_x, age = _summary_columns(summary)
    z = spend_covariate(summary)
    base = production.params.as_dict()  # the starting point

    def unpack(theta: np.ndarray) -> tuple[BgNbdParams, float]:
        r, alpha, a, b = (float(v) for v in np.exp(theta[:4]))
        return BgNbdParams(r=r, alpha=alpha, a=a, b=b), float(theta[4])

    def objective(theta: np.ndarray) -> float:
        params, gamma = unpack(theta)
        value = -float(covariate_log_likelihood(params, gamma, z, x, t_x, age).mean())
        return value if np.isfinite(value) else 1e10

    a, b = max(base["a"], 1e-3), min(base["b"], 1e3)
    starts = [
        np.array([math.log(base["r"]), math.log(base["alpha"]), math.log(a), math.log(b), g])
        for g in (0.0, 0.5, -0.5)
    ]
    theta = _minimise(objective, starts)
    params, gamma = unpack(theta)
    scale = np.exp(-gamma * z)
    return PurchaseFit(
        COVARIATE_NAME,
        bg_nbd_expected_purchases(params, horizon_days / scale, x, t_x / scale, age / scale),
        bg_nbd_prob_no_purchase(params, horizon_days / scale, x, t_x / scale, age / scale),
        -objective(theta) * x.size,
        5,
        {**params.as_dict(), "gamma": gamma},
    )


# name -> fit and score on (summary, horizon, the production BG/NBD fit of the summary)
PURCHASE_MODELS: dict[str, Callable[[pd.DataFrame, int, BgNbdFit], PurchaseFit]] = {
    MODEL_NAME: production_purchases,
    TWO_CLASS_NAME: two_class_purchases,
    COVARIATE_NAME: covariate_purchases,
}


# --------------------------------------------------------------------------------------------
# the backtest
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldResult:
    """One fold: the metrics of every model (``evaluation_table``'s columns plus ``origin``) and
    every purchase model's fit (``model``, ``log_likelihood``, ``n_parameters``, ``bic``)."""

    metrics: pd.DataFrame
    fits: pd.DataFrame


def evaluate_fold(fold: Fold, models: Sequence[str] = CANDIDATES) -> FoldResult:
    """Fit the production models on the fold's summary once, every other purchase model of
    ``models`` from the production BG/NBD's estimate, and score them (each with the production
    Gamma-Gamma's order values) and the naive rate on the fold's actuals."""
    unknown = sorted(set(models) - set(PURCHASE_MODELS))
    if unknown:
        raise BacktestError(f"unknown model(s) {unknown}; choose from {sorted(PURCHASE_MODELS)}")
    summary = fold.summary
    bg_nbd, gamma_gamma = fit_summary_models(summary)
    order_value = gamma_gamma_expected_order_value(
        gamma_gamma.params, summary["frequency"], summary["monetary"]
    )
    n = len(summary)
    tables, fits = [], []
    for name in models:
        fit = PURCHASE_MODELS[name](summary, fold.horizon_days, bg_nbd)
        predictions = pd.DataFrame(
            {
                "customer_id": summary["customer_id"].to_numpy(),
                "expected_purchases": fit.expected_purchases,
                "prob_no_purchase": fit.prob_no_purchase,
                "expected_order_value": order_value,
            }
        )
        table = evaluation_table(summary, fold.actuals, predictions, fold.horizon_days, fold.origin)
        if name != MODEL_NAME:
            table = table.loc[table["model"] == MODEL_NAME]
        tables.append(table.replace({"model": {MODEL_NAME: name}}))
        fits.append(
            {
                "origin": fold.origin,
                "model": name,
                "log_likelihood": fit.log_likelihood,
                "n_parameters": fit.n_parameters,
                "bic": -2.0 * fit.log_likelihood + fit.n_parameters * math.log(n),
                "parameters": ", ".join(f"{k}={v:.4g}" for k, v in fit.parameters.items()),
            }
        )
    metrics = pd.concat(tables, ignore_index=True)
    metrics.insert(0, "origin", fold.origin)
    return FoldResult(metrics, pd.DataFrame(fits))


def backtest(
    lines: pd.DataFrame,
    calibration_end: pd.Timestamp,
    horizon_days: int = 91,
    folds: int = 2,
    models: Sequence[str] = CANDIDATES,
) -> FoldResult:
    """Every fold of ``fold_origins`` (latest first), concatenated."""
    results = [
        evaluate_fold(make_fold(lines, origin, horizon_days), models)
        for origin in fold_origins(calibration_end, horizon_days, folds)
    ]
    return FoldResult(
        pd.concat([r.metrics for r in results], ignore_index=True),
        pd.concat([r.fits for r in results], ignore_index=True),
    )


def _metric(metrics: pd.DataFrame, origin: pd.Timestamp, model: str, target: str) -> pd.Series:
    row = metrics.loc[
        (metrics["origin"] == origin) & (metrics["model"] == model) & (metrics["target"] == target)
    ]
    return row.iloc[0]


def _better(own: pd.Series, other: pd.Series) -> bool:
    return bool(own["rmse"] < other["rmse"] and own["pearson"] > other["pearson"])


def verdict(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per candidate: whether it beats the production model on every fold (lower RMSE and higher
    correlation on purchases and spend; the rule that would replace the production model) and
    whether it meets the issue's targets against the naive rate on every fold."""
    rows = []
    origins = list(dict.fromkeys(metrics["origin"]))
    for model in dict.fromkeys(metrics["model"]):
        if model == BASELINE_NAME:
            continue
        beats_production, meets_targets = True, True
        for origin in origins:
            for target in ("purchases", "spend"):
                own = _metric(metrics, origin, model, target)
                production = _metric(metrics, origin, MODEL_NAME, target)
                naive = _metric(metrics, origin, BASELINE_NAME, target)
                beats_production &= _better(own, production)
                meets_targets &= _better(own, naive)
            auc = _metric(metrics, origin, model, "purchases")["auc_no_purchase"]
            meets_targets &= bool(auc >= TARGET_AUC)
        rows.append(
            {
                "model": model,
                "beats_production_on_every_fold": model != MODEL_NAME and beats_production,
                "meets_targets_on_every_fold": meets_targets,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def read_lines(database: Path) -> tuple[pd.DataFrame, pd.Timestamp, int]:
    """The dated sales lines, the calibration end and the holdout length of a built warehouse."""
    if not database.exists():
        raise BacktestError(f"no warehouse at {database}: run `make build` first")
    connection = duckdb.connect(str(database), read_only=True)
    try:
        columns = ", ".join(LINE_COLUMNS)
        lines = connection.sql(
            f"select {columns} from intermediate.int_sales_lines__returns_dated"
        ).df()
        window = connection.sql(
            "select min(calibration_end), min(holdout_end) from ml.clv_evaluation"
        ).fetchall()
    except duckdb.Error as error:
        raise BacktestError(
            f"{database} has no customer value tables ({error}); run `make build` first"
        ) from error
    finally:
        connection.close()
    calibration_end, holdout_end = (pd.Timestamp(value) for value in window[0])
    return lines, calibration_end, int((holdout_end - calibration_end) / pd.Timedelta(days=1))


def _print_table(title: str, frame: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))


def run(database: Path, folds: int) -> int:
    """Print the backtest of a built warehouse; returns the exit code."""
    lines, calibration_end, horizon = read_lines(database)
    result = backtest(lines, calibration_end, horizon, folds)
    shown = ["origin", "model", "target", "mae", "rmse", "pearson", "total_error"]
    shown.append("auc_no_purchase")
    _print_table(
        f"Folds inside the calibration window (ending on or before {calibration_end.date()}), "
        f"{horizon}-day horizons:",
        result.metrics[shown],
    )
    _print_table("Purchase model fits (log-likelihood, BIC: lower is better):", result.fits)
    _print_table("Verdict (decided on the folds only):", verdict(result.metrics))
    holdout = evaluate_fold(make_fold(lines, calibration_end, horizon))
    _print_table(
        f"For the record, ml.clv_evaluation's holdout ({calibration_end.date()} + {horizon} days;"
        " it chooses nothing):",
        holdout.metrics[shown],
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m retail_segments_dev.clv_backtest",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="the built DuckDB warehouse (default: the one `make build` writes)",
    )
    parser.add_argument("--folds", type=int, default=2, help="folds before the calibration end")
    args = parser.parse_args(argv)
    database = args.warehouse or warehouse_path(find_project_root())
    try:
        return run(database, args.folds)
    except (BacktestError, CustomerValueError) as error:
        print(f"clv_backtest: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

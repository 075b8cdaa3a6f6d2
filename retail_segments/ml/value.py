"""Customer lifetime value and churn risk: BG/NBD and Gamma-Gamma fitted by maximum likelihood.

Pure pandas / numpy / scipy (no DuckDB, no dbt), so the same functions run in a dbt Python model,
in a notebook or under Spark. ``docs/clv.md`` has the derivations and the design choices.

Data. ``repeat_purchase_summary`` turns transaction rows (per line or per order) strictly before
``as_of`` into one row per customer. The unit of a purchase is a calendar day in the data's own
clock: all rows of a customer on one day are one purchase, dated at that day's midnight.
``frequency`` = purchase days - 1 (repeat purchase days), ``recency`` = days from the first to the
last purchase day, ``T`` = days from the first purchase day to ``as_of``, ``monetary`` = mean spend
per repeat purchase day (the first day excluded; NaN without a repeat day).

Models. BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): while alive a
customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``; after each repeat
purchase they drop out with probability ``p ~ Beta(a, b)``. Gamma-Gamma (Fader, Hardie and Lee
2005, "RFM and CLV: using iso-value curves"; Fader and Hardie 2013, "The Gamma-Gamma model of
monetary value"): each repeat purchase's value is ``Gamma(p, nu)`` with ``nu ~ Gamma(q, v)``.
Both are fitted by maximum likelihood on log-parameters (L-BFGS-B with analytic gradients, several
starts). Customers with identical summaries can be collapsed into one weighted row
(``collapse_summary``), which keeps the fit in seconds at any number of customers.

Predictions for a horizon of ``t`` days: expected purchases (the paper's hypergeometric formula,
rewritten as a sum of nonnegative negative-binomial terms that stays exact at ``a = 1``, for many
purchases and for degenerate fits), probability alive, the probability of no purchase in the next
``t`` days, the expected average order value and a discounted 12-month CLV.
``fit_customer_value`` (``fit_value_models`` plus the predictions) and ``evaluate_customer_value``
are the entry points for notebooks; ``customer_value_record`` and ``customer_value_scorer`` those of
the warehouse.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import optimize, special, stats

# one BLAS thread in the process: L-BFGS-B calls BLAS on vectors of 3-4 numbers, and a threaded
# OpenBLAS on a busy machine made each fit several times slower
from retail_segments.ml import threads as _threads  # noqa: F401
from retail_segments.ml.config import ConfigError
from retail_segments.ml.results import fit_record
from retail_segments.ml.settings import VALUE_SETTINGS, CustomerValueSettings

DAY = pd.Timedelta(days=1)


def _days(durations: pd.Series) -> np.ndarray:
    """Durations in (fractional) days."""
    return (durations.dt.total_seconds() / DAY.total_seconds()).to_numpy(dtype="float64")


SUMMARY_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary",
    "total_spend",
    "first_purchase_at",
    "last_purchase_at",
)
EVALUATION_COLUMNS: tuple[str, ...] = (
    "model",
    "target",
    "mae",
    "rmse",
    "pearson",
    "total_error",
    "auc_no_purchase",
    "top_decile_share",
    "n_customers",
    "calibration_end",
    "holdout_end",
)
MODEL_COLUMNS: tuple[str, ...] = (
    "model",
    "parameters",
    "log_likelihood",
    "n_customers",
    "n_fit_rows",
    "converged",
    "boundary_parameters",
    "data_window_start",
    "data_window_end",
)
MODEL_NAME = "bg_nbd_gamma_gamma"
BASELINE_NAME = "naive_rate"

# log-parameters are kept in [-LOG_BOUND, LOG_BOUND] (about 2e-9 .. 5e8)
LOG_BOUND = 20.0
_SERIES_RTOL = 1e-15
# a fit counts as converged when the largest free gradient component of the mean negative
# log-likelihood (per customer, log-parameters) is below this
_GRADIENT_TOL = 1e-5
_SERIES_MAX_TERMS = 1_000_000


class CustomerValueError(ValueError):
    """A bad input or setting for the customer value models; the message says what to change."""


# --------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------


SETTINGS = VALUE_SETTINGS


def customer_value_settings(
    config: Mapping[str, Any] | CustomerValueSettings | None = None,
) -> CustomerValueSettings:
    """Validate settings and fill in the defaults of ``CustomerValueSettings``.

    Parameters
    ----------
    config : a mapping of setting name to value (missing keys take the default), a
        ``CustomerValueSettings`` (returned as is) or ``None`` (all defaults).

    Returns
    -------
    The checked ``CustomerValueSettings``. Raises ``CustomerValueError`` naming an unknown key or
    a bad value and what it should be.
    """
    if isinstance(config, CustomerValueSettings):
        return config
    try:
        return CustomerValueSettings.parse(config, name="clv settings")
    except ConfigError as error:
        raise CustomerValueError(str(error)) from None


def _is_real(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float | np.integer | np.floating)
        and math.isfinite(value)
    )


# --------------------------------------------------------------------------------------------
# repeat-purchase summary
# --------------------------------------------------------------------------------------------


def _timestamp(value: Any, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise CustomerValueError(
            f"{name} must be a date or timestamp such as '2011-12-10', got {value!r}"
        ) from error
    if pd.isna(stamp):
        raise CustomerValueError(f"{name} must be a date or timestamp, got {value!r}")
    return stamp


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise CustomerValueError(
            f"{what} lacks column(s) {missing}; it has {list(frame.columns)} "
            "(set customer_column / time_column / amount_column to the right names)"
        )


def _purchase_days(
    transactions: pd.DataFrame,
    start: pd.Timestamp | None,
    end: pd.Timestamp,
    customer_column: str,
    time_column: str,
    amount_column: str,
) -> pd.DataFrame:
    """Rows with ``start <= time < end`` summed per customer and calendar day.

    Returns ``customer_id``, ``day`` (midnight), ``spend``, ``first_at`` and ``last_at`` (the
    first and last row time of the day), sorted by customer and day.
    """
    _require_columns(
        transactions, (customer_column, time_column, amount_column), "the transaction rows"
    )
    try:
        times = pd.to_datetime(transactions[time_column])
    except (TypeError, ValueError) as error:
        raise CustomerValueError(f"column {time_column!r} must hold timestamps: {error}") from error
    tz = getattr(times.dt, "tz", None)
    if tz is not None:
        end = end.tz_localize(tz) if end.tzinfo is None else end.tz_convert(tz)
        if start is not None:
            start = start.tz_localize(tz) if start.tzinfo is None else start.tz_convert(tz)
    elif end.tzinfo is not None:
        raise CustomerValueError(
            f"column {time_column!r} has no time zone but the cut-off {end} has one; pass a "
            "cut-off without a time zone (it is read in the data's clock)"
        )
    keep = (times < end).to_numpy()
    if start is not None:
        keep = keep & (times >= start).to_numpy()
    positions = np.flatnonzero(keep)
    rows = pd.DataFrame(
        {
            "customer_id": transactions[customer_column].iloc[positions].to_numpy(),
            "at": times.iloc[positions].reset_index(drop=True),
            "amount": pd.to_numeric(transactions[amount_column], errors="coerce")
            .iloc[positions]
            .to_numpy(),
        }
    )
    for column, source in (
        ("customer_id", customer_column),
        ("at", time_column),
        ("amount", amount_column),
    ):
        if rows[column].isna().any():
            raise CustomerValueError(
                f"column {source!r} has {int(rows[column].isna().sum())} missing or non-numeric "
                "value(s) in the rows used; clean them first"
            )
    rows["day"] = rows["at"].dt.normalize()
    return (
        rows.groupby(["customer_id", "day"], sort=True)
        .agg(spend=("amount", "sum"), first_at=("at", "min"), last_at=("at", "max"))
        .reset_index()
    )


def repeat_purchase_summary(
    transactions: pd.DataFrame,
    as_of: Any,
    *,
    customer_column: str = "customer_id",
    time_column: str = "purchased_at",
    amount_column: str = "amount",
) -> pd.DataFrame:
    """One row per customer: the repeat-purchase summary of the rows strictly before ``as_of``.

    Parameters
    ----------
    transactions : one row per line or per order: customer, timestamp and amount (money). Rows at
        or after ``as_of`` are ignored, so the summary never sees the future.
    as_of : cut-off timestamp (exclusive), e.g. ``'2011-12-10'`` (midnight). A time zone-naive
        cut-off is read in the data's clock.
    customer_column, time_column, amount_column : column names in ``transactions``.

    Returns
    -------
    ``SUMMARY_COLUMNS``, one row per customer with a row before ``as_of``, sorted by customer:
    ``frequency`` (int, repeat purchase days = distinct purchase days - 1), ``recency`` (days from
    the first to the last purchase day), ``T`` (days from the first purchase day's midnight to
    ``as_of``; whole days when ``as_of`` is a midnight), ``monetary`` (mean spend per repeat
    purchase day, NaN when ``frequency`` is 0), ``total_spend`` (all days),
    ``first_purchase_at`` and ``last_purchase_at`` (timestamps of the first and last row).
    """
    cutoff = _timestamp(as_of, "as_of")
    days = _purchase_days(transactions, None, cutoff, customer_column, time_column, amount_column)
    if days.empty:
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in SUMMARY_COLUMNS})
    grouped = days.groupby("customer_id", sort=True)
    first_day = grouped["day"].min()
    last_day = grouped["day"].max()
    n_days = grouped.size()
    total = grouped["spend"].sum()
    first_spend = grouped["spend"].first()
    frequency = (n_days - 1).astype("int64")
    cutoff_in_clock = cutoff
    tz = first_day.dt.tz
    if tz is not None:
        cutoff_in_clock = cutoff.tz_localize(tz) if cutoff.tzinfo is None else cutoff.tz_convert(tz)
    repeat_spend = total - first_spend
    monetary = (repeat_spend / frequency.where(frequency > 0)).astype("float64")
    summary = pd.DataFrame(
        {
            "customer_id": first_day.index.to_numpy(),
            "frequency": frequency.to_numpy(),
            "recency": _days(last_day - first_day),
            "T": _days(cutoff_in_clock - first_day),
            "monetary": monetary.to_numpy(),
            "total_spend": total.to_numpy(dtype="float64"),
            "first_purchase_at": grouped["first_at"].min().to_numpy(),
            "last_purchase_at": grouped["last_at"].max().to_numpy(),
        }
    )
    summary["customer_id"] = summary["customer_id"].astype(days["customer_id"].dtype)
    return summary


def holdout_actuals(
    transactions: pd.DataFrame,
    start: Any,
    days: int,
    *,
    customer_column: str = "customer_id",
    time_column: str = "purchased_at",
    amount_column: str = "amount",
) -> pd.DataFrame:
    """Purchase days and spend per customer in the window ``[start, start + days)``.

    Parameters
    ----------
    transactions : rows as for ``repeat_purchase_summary``.
    start : first instant of the window (inclusive), e.g. the calibration end.
    days : window length in days.
    customer_column, time_column, amount_column : column names in ``transactions``.

    Returns
    -------
    ``customer_id``, ``purchases`` (distinct purchase days in the window) and ``spend`` (sum of
    amounts in the window), one row per customer with a row in the window.
    """
    begin = _timestamp(start, "start")
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise CustomerValueError(f"holdout days must be a whole number >= 1, got {days!r}")
    window = _purchase_days(
        transactions,
        begin,
        begin + pd.Timedelta(days=days),
        customer_column,
        time_column,
        amount_column,
    )
    return (
        window.groupby("customer_id", sort=True)
        .agg(purchases=("day", "size"), spend=("spend", "sum"))
        .reset_index()
    )


def collapse_summary(
    summary: pd.DataFrame, columns: Sequence[str] = ("frequency", "recency", "T")
) -> pd.DataFrame:
    """Collapse customers with the same summary into one row with a ``weight`` (their count).

    The BG/NBD likelihood depends only on (frequency, recency, T), so a weighted fit on the
    collapsed rows gives exactly the fit on every customer, at a fraction of the cost (daily data
    has few distinct summaries: 38% of the rows on 437,200 simulated customers).

    Parameters
    ----------
    summary : any frame with ``columns`` (e.g. the output of ``repeat_purchase_summary``).
    columns : the columns that identify a row.

    Returns
    -------
    The distinct rows of ``columns`` (sorted) with an int64 ``weight`` column.
    """
    _require_columns(summary, columns, "the summary")
    return (
        summary.groupby(list(columns), sort=True, dropna=False)
        .size()
        .rename("weight")
        .reset_index()
    )


# --------------------------------------------------------------------------------------------
# shared fitting machinery
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitDiagnostics:
    """How a maximum-likelihood fit went.

    Attributes
    ----------
    log_likelihood : total log-likelihood at the estimate (weighted sum over customers).
    n_customers : customers in the fit (sum of the weights).
    n_rows : rows the optimiser saw (distinct summaries when collapsed).
    converged : the best start's optimiser reported success, or it stopped (e.g. on a line-search
        failure along a flat ridge) where the gradient of the mean log-likelihood in the free
        log-parameters is below 1e-5.
    iterations : iterations of the best start.
    message : the optimiser's message of the best start.
    boundary_parameters : parameters whose log ended within 1e-6 of the bound ``LOG_BOUND``
        (e.g. ``a`` going to 0 when nobody seems to drop out); their likelihood is flat there.
    log_std_errors : asymptotic standard errors of the log-parameters from the observed
        information (NaN when the Hessian is not positive definite or at a bound).
    """

    log_likelihood: float
    n_customers: float
    n_rows: int
    converged: bool
    iterations: int
    message: str
    boundary_parameters: tuple[str, ...]
    log_std_errors: dict[str, float]


def _dot(left: np.ndarray, right: np.ndarray) -> float:
    """Inner product without BLAS: the vectors are long but the work is tiny, and a threaded BLAS
    on a busy machine made each likelihood evaluation ten times slower."""
    return float(np.multiply(left, right).sum())


def _check_weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype="float64").ravel()
    if w.shape != (n,):
        raise CustomerValueError(f"weights must have one value per row ({n}), got {w.size}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise CustomerValueError("weights must be finite and > 0 (a customer count per row)")
    return w


def _maximise(
    objective: Any,
    starts: Sequence[np.ndarray],
    names: Sequence[str],
    total_weight: float,
) -> tuple[np.ndarray, FitDiagnostics]:
    """Minimise ``objective(theta) -> (mean negative log-likelihood, gradient)`` from each start."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(names)
    best = None
    with np.errstate(over="ignore", under="ignore"):
        for start in starts:
            result = optimize.minimize(
                objective,
                np.clip(start, -LOG_BOUND + 1, LOG_BOUND - 1),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-9},
            )
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
    if best is None:
        raise CustomerValueError("the likelihood is not finite at any start; check the summary")
    theta = best.x
    # L-BFGS-B can stop on a line-search failure along a flat ridge (e.g. a and b growing
    # together); the fit is still a maximum when the projected gradient vanishes
    gradient = objective(theta)[1]
    pinned = ((theta <= -LOG_BOUND + 1e-6) & (gradient > 0)) | (
        (theta >= LOG_BOUND - 1e-6) & (gradient < 0)
    )
    stationary = float(np.max(np.abs(gradient[~pinned]), initial=0.0)) < _GRADIENT_TOL
    at_bound = tuple(
        name for name, value in zip(names, theta, strict=True) if abs(value) > LOG_BOUND - 1e-6
    )
    std_errors = _log_std_errors(objective, theta, total_weight, at_bound)
    diagnostics = FitDiagnostics(
        log_likelihood=float(-best.fun * total_weight),
        n_customers=float(total_weight),
        n_rows=0,
        converged=bool(best.success) or stationary,
        iterations=int(best.nit),
        message=str(best.message),
        boundary_parameters=at_bound,
        log_std_errors=dict(zip(names, std_errors, strict=True)),
    )
    return theta, diagnostics


def _log_std_errors(
    objective: Any, theta: np.ndarray, total_weight: float, at_bound: tuple[str, ...]
) -> list[float]:
    """Standard errors from the Hessian of the total negative log-likelihood (central
    differences of the analytic gradient)."""
    k = theta.size
    if at_bound:
        return [math.nan] * k
    step = 1e-5
    hessian = np.empty((k, k))
    for j in range(k):
        shift = np.zeros(k)
        shift[j] = step
        hessian[:, j] = (objective(theta + shift)[1] - objective(theta - shift)[1]) / (2 * step)
    hessian = total_weight * (hessian + hessian.T) / 2
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return [math.nan] * k
    variances = np.diag(covariance)
    if np.any(variances <= 0) or np.any(np.linalg.eigvalsh(hessian) <= 0):
        return [math.nan] * k
    return [float(v) for v in np.sqrt(variances)]


# --------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------


def _check_positive(params: Mapping[str, float], model: str) -> None:
    bad = {k: v for k, v in params.items() if not (_is_real(v) and v > 0)}
    if bad:
        raise CustomerValueError(f"{model} parameters must be finite numbers > 0, got {bad}")


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rate ``Gamma(r, alpha)`` (alpha in the data's time unit) and
    dropout probability ``Beta(a, b)``."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        _check_positive(self.as_dict(), "BG/NBD")

    def as_dict(self) -> dict[str, float]:
        """The parameters as ``{'r': ..., 'alpha': ..., 'a': ..., 'b': ...}``."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class BgNbdFit:
    """A BG/NBD maximum-likelihood fit: ``params`` and ``diagnostics``."""

    params: BgNbdParams
    diagnostics: FitDiagnostics


BG_NBD_NAMES: tuple[str, ...] = ("r", "alpha", "a", "b")


def _summary_arrays(
    frequency: Any, recency: Any, T: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, age = (np.asarray(v, dtype="float64") for v in (frequency, recency, T))
    x, t_x, age = np.broadcast_arrays(x, t_x, age)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t_x)) and np.all(np.isfinite(age))):
        raise CustomerValueError("frequency, recency and T must be finite numbers")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise CustomerValueError("frequency must be a whole number >= 0 (repeat purchases)")
    if np.any(t_x < 0) or np.any(t_x > age) or np.any(age <= 0):
        raise CustomerValueError("the summary needs 0 <= recency <= T and T > 0 for every row")
    if np.any((x == 0) & (t_x != 0)):
        raise CustomerValueError("recency must be 0 where frequency is 0")
    return x, t_x, age


class _BgNbdData:
    """Summary arrays prepared once for many likelihood evaluations.

    Terms that depend only on the frequency are computed on its distinct values and summed with
    the weight of each value; ``log(alpha + T)`` and ``log(alpha + t_x)`` on the distinct ages and
    recencies. Only the mixture term ``logaddexp(u, v)`` is evaluated per row, and only for rows
    with a repeat purchase (``v = -inf`` otherwise).
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, w: np.ndarray) -> None:
        self.x, self.t_x, self.age, self.w = x, t_x, age, w
        self.total_weight = float(w.sum())
        self.x_values, self.x_index = np.unique(x, return_inverse=True)
        self.x_weight = np.bincount(self.x_index, weights=w, minlength=self.x_values.size)
        self.age_values, self.age_index = np.unique(age, return_inverse=True)
        repeat = np.flatnonzero(x > 0)
        self.repeat = repeat
        self.tx_values, self.tx_index = np.unique(t_x[repeat], return_inverse=True)
        self.rep_x = x[repeat]
        self.rep_w = w[repeat]
        self.rep_x_index = self.x_index[repeat]

    def _parts(self, theta: np.ndarray) -> dict[str, Any]:
        r, alpha, a, b = np.exp(theta)
        xv = self.x_values
        log_bx1 = np.log(b + np.maximum(xv, 1.0) - 1.0)
        log_age = np.log(alpha + self.age_values)[self.age_index]
        log_tx = np.log(alpha + self.tx_values)[self.tx_index]
        mix = -(r + self.x) * log_age
        u_rep = mix[self.repeat]
        v_rep = theta[2] - log_bx1[self.rep_x_index] - (r + self.rep_x) * log_tx
        # logaddexp(u, v) = u - log_expit(u - v); share of the alive term = expit(u - v)
        log_share_u = special.log_expit(u_rep - v_rep)
        mix[self.repeat] = u_rep - log_share_u
        x_terms = special.gammaln(r + xv) - special.gammaln(r)
        x_terms += special.gammaln(b + xv) - special.gammaln(b)
        x_terms += special.gammaln(a + b) - special.gammaln(a + b + xv)
        return {
            "params": (r, alpha, a, b),
            "log_bx1": log_bx1,
            "log_age": log_age,
            "log_tx": log_tx,
            "log_share_u": log_share_u,
            "mix": mix,
            "x_terms": x_terms,
        }

    def row_log_likelihood(self, theta: np.ndarray) -> np.ndarray:
        """Per-row log-likelihood."""
        parts = self._parts(theta)
        r = parts["params"][0]
        return parts["x_terms"][self.x_index] + r * theta[1] + parts["mix"]

    def objective(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean negative log-likelihood over customers (weighted) and its gradient in the
        log-parameters."""
        parts = self._parts(theta)
        r, alpha, a, b = parts["params"]
        total = self.total_weight
        value = (
            -(
                _dot(self.x_weight, parts["x_terms"])
                + r * theta[1] * total
                + _dot(self.w, parts["mix"])
            )
            / total
        )
        if not np.isfinite(value):
            return math.inf, np.zeros_like(theta)
        xv, xw = self.x_values, self.x_weight
        share_u = np.ones(self.x.size)
        share_u[self.repeat] = np.exp(parts["log_share_u"])
        share_v = -np.expm1(parts["log_share_u"])  # repeat rows only
        inv_age = (1.0 / (alpha + self.age_values))[self.age_index]
        log_tx = parts["log_tx"]
        rep_w = self.rep_w
        psi_r = special.digamma(r + xv) - special.digamma(r)
        psi_ab = special.digamma(a + b) - special.digamma(a + b + xv)
        psi_b = special.digamma(b + xv) - special.digamma(b)
        weighted_u = self.w * share_u
        weighted_v = rep_w * share_v
        grad = np.array(
            [
                r
                * (
                    _dot(xw, psi_r)
                    + theta[1] * total
                    - _dot(weighted_u, parts["log_age"])
                    - _dot(weighted_v, log_tx)
                ),
                r * total
                - alpha
                * (
                    _dot(weighted_u * (r + self.x), inv_age)
                    + _dot(weighted_v * (r + self.rep_x), 1.0 / (alpha + self.t_x[self.repeat]))
                ),
                a * _dot(xw, psi_ab) + float(weighted_v.sum()),
                b * _dot(xw, psi_b + psi_ab)
                - b * _dot(weighted_v, np.exp(-parts["log_bx1"][self.rep_x_index])),
            ]
        )
        return value, -grad / total


def bg_nbd_log_likelihood(params: BgNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood.

    Uses the form of Fader and Hardie's note "Overcoming the BG/NBD model's #NUM! error problem"
    on the log scale: ``log Gamma(r+x) - log Gamma(r) + r log alpha + log B(a, b+x) - log B(a, b)
    + logaddexp(-(r+x) log(alpha+T), [x>0] (log a - log(b+x-1) - (r+x) log(alpha+t_x)))``, with
    the Beta ratio written without ``log Gamma(a)`` so it stays exact as ``a -> 0``.

    Parameters
    ----------
    params : the model parameters.
    frequency, recency, T : arrays (broadcastable) of the summary, in one time unit.

    Returns
    -------
    Array of log-likelihoods, one per row.
    """
    x, t_x, age = _summary_arrays(frequency, recency, T)
    theta = np.log([params.r, params.alpha, params.a, params.b])
    data = _BgNbdData(x.ravel(), t_x.ravel(), age.ravel(), np.ones(x.size))
    with np.errstate(over="ignore", under="ignore"):
        ll = data.row_log_likelihood(theta)
    return ll.reshape(x.shape)


def _bg_nbd_starts(x: np.ndarray, age: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    rate = _dot(w, x) / _dot(w, age)
    if rate <= 0:
        rate = 1.0 / float(np.average(age, weights=w))
    starts = []
    for r, a, b in ((1.0, 1.0, 1.0), (0.5, 0.5, 3.0), (2.0, 0.1, 10.0)):
        starts.append(np.log([r, r / rate, a, b]))
    return starts


def fit_bg_nbd(frequency: Any, recency: Any, T: Any, weights: Any = None) -> BgNbdFit:
    """Fit BG/NBD by maximum likelihood.

    Parameters
    ----------
    frequency, recency, T : the repeat-purchase summary (one row per customer, or per distinct
        summary with ``weights``), in one time unit (days here, weeks in the paper).
    weights : optional customer count per row (see ``collapse_summary``); a weighted fit equals
        the fit on the expanded rows.

    Returns
    -------
    ``BgNbdFit``: parameters (``alpha`` in the time unit of the input) and diagnostics. Three
    starts are optimised with L-BFGS-B on the log-parameters (bounded to +-``LOG_BOUND``) and the
    best is kept. Raises ``CustomerValueError`` when nobody made a repeat purchase.
    """
    x, t_x, age = (v.ravel() for v in _summary_arrays(frequency, recency, T))
    w = _check_weights(weights, x.size)
    if x.size == 0 or not np.any(x > 0):
        raise CustomerValueError(
            "BG/NBD needs customers with a repeat purchase day; none of the "
            f"{x.size} rows has frequency > 0 (is the cut-off too early?)"
        )
    data = _BgNbdData(x, t_x, age, w)
    theta, diagnostics = _maximise(
        data.objective, _bg_nbd_starts(x, age, w), BG_NBD_NAMES, data.total_weight
    )
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    return BgNbdFit(
        params=BgNbdParams(r=r, alpha=alpha, a=a, b=b),
        diagnostics=replace(diagnostics, n_rows=int(x.size)),
    )


def bg_nbd_prob_alive(params: BgNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Probability that a customer is still alive at ``T``.

    ``1 / (1 + [x>0] a / (b+x-1) ((alpha+T) / (alpha+t_x))^(r+x))``, computed as a logistic of
    the log-odds. Customers without a repeat purchase are alive with probability 1 (dropout
    happens only after a repeat purchase).

    Parameters
    ----------
    params : the model parameters.
    frequency, recency, T : the summary (broadcastable arrays).

    Returns
    -------
    Array of probabilities.
    """
    x, t_x, age = _summary_arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds = (
        math.log(a)
        - np.log(b + np.maximum(x, 1.0) - 1.0)
        + (r + x) * np.log1p((age - t_x) / (alpha + t_x))
    )
    return np.where(x > 0, special.expit(-log_odds), 1.0)


def _alive_purchase_sum(
    k: np.ndarray, c: np.ndarray, big_c: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """``sum_{n>=1} NB_n D_n``: the expected purchases of an alive customer divided by ``C``.

    ``NB_n = (k)_n z^n (1-z)^k / n!`` is the negative binomial pmf and ``D_n = sum_{j<n} R_j /
    (C+j)`` with ``R_j = (c)_j / (C)_j``, where ``k = r+x``, ``c = b+x``, ``C = a+b+x-1`` and
    ``0 <= z < 1``. Every term is >= 0, so nothing cancels for any ``a``. ``NB_n`` is carried as
    a logarithm (``(1-z)^k`` underflows for many purchases). ``D_n`` is concave in ``n`` (its
    increments ``R_j / (C+j)`` do not grow when ``a >= 0``), so ``D_m <= D_n m / n`` and the tail
    after term ``n`` is at most ``term_n rho_n / (1 - rho_n)`` with ``rho_n = (k+n) z / n``; the
    sum stops when that bound is below ``_SERIES_RTOL`` of the sum.
    """
    out = np.zeros(z.shape)
    active = np.flatnonzero(z > 0)
    k, c, big_c, z = k[active], c[active], big_c[active], z[active]
    log_z = np.log(z)
    log_nb = k * np.log1p(-z)  # log NB_0
    ratio = np.ones(active.size)  # R_0
    d = np.zeros(active.size)  # D_0
    total = np.zeros(active.size)
    n = 0
    while active.size:
        # step from n to n + 1
        d = d + ratio / (big_c + n)
        ratio = ratio * (c + n) / (big_c + n)
        log_nb = log_nb + np.log(k + n) + log_z - math.log(n + 1)
        n += 1
        term = np.exp(log_nb) * d
        total = total + term
        rho = (k + n) * z / n
        with np.errstate(divide="ignore", invalid="ignore"):
            tail = term * rho / (1.0 - rho)
        done = (rho < 1.0) & (tail <= _SERIES_RTOL * total)
        if done.any():
            out[active[done]] = total[done]
            keep = ~done
            active, k, c, big_c, z, log_z, log_nb, ratio, d, total = (
                v[keep] for v in (active, k, c, big_c, z, log_z, log_nb, ratio, d, total)
            )
        if active.size and n >= _SERIES_MAX_TERMS:
            raise CustomerValueError(
                "expected purchases: the sum did not converge; the horizon is too long compared "
                "with alpha + T (shorten horizon_days)"
            )
    return out


def _distinct_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the distinct rows of equal-length 1-D arrays and the position of each code's
    first row (hash-based, no sorting of the rows)."""
    codes = np.zeros(columns[0].size, dtype="int64")
    for column in columns:
        column_codes, uniques = pd.factorize(column)
        codes = codes * len(uniques) + column_codes
        codes, _ = pd.factorize(codes)
    first = np.full(int(codes.max()) + 1 if codes.size else 0, -1, dtype="int64")
    first[codes[::-1]] = np.arange(codes.size - 1, -1, -1)
    return codes, first


def bg_nbd_expected_purchases(
    params: BgNbdParams, t: Any, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """Expected purchases in ``(T, T + t]`` given the summary: ``E[X(t) | x, t_x, T]``.

    The paper's equation (10) is ``P(alive) (a+b+x-1)/(a-1) [1 - (1-z)^(r+x) 2F1(r+x, b+x;
    a+b+x-1; z)]`` with ``z = t / (alpha+T+t)``. Evaluated literally it overflows for many
    purchases (``2F1`` grows like ``(1-z)^-(r+x)``) and cancels catastrophically near ``a = 1`` (a
    removable 0/0). Writing ``(1-z)^(r+x) 2F1`` as a sum of negative binomial probabilities
    ``NB_n`` times ``(b+x)_n / (a+b+x-1)_n`` turns the bracket divided by ``a - 1`` into a sum of
    nonnegative terms (``_alive_purchase_sum``, derivation in ``docs/clv.md``), exact for every
    ``a`` including 1 and for degenerate fits with huge ``a`` and ``b``.

    Parameters
    ----------
    params : the model parameters.
    t : horizon (same time unit as the summary), scalar or broadcastable array, >= 0.
    frequency, recency, T : the summary (broadcastable arrays).

    Returns
    -------
    Array of expected purchases.
    """
    x, t_x, age = _summary_arrays(frequency, recency, T)
    horizon = np.asarray(t, dtype="float64")
    if not np.all(np.isfinite(horizon)) or np.any(horizon < 0):
        raise CustomerValueError(f"the horizon t must be finite and >= 0, got {t!r}")
    x, t_x, age, horizon = np.broadcast_arrays(x, t_x, age, horizon)
    shape = x.shape
    x, t_x, age, horizon = (v.ravel() for v in (x, t_x, age, horizon))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # the sum depends on (x, T, t) only: compute it once per distinct triple
    codes, firsts = _distinct_rows(x, age, horizon)
    x_d, age_d, horizon_d = x[firsts], age[firsts], horizon[firsts]
    big_c = a + b + x_d - 1.0
    alive_sum = _alive_purchase_sum(
        r + x_d, b + x_d, big_c, horizon_d / (alpha + age_d + horizon_d)
    )
    alive = bg_nbd_prob_alive(params, x, t_x, age)
    return (alive * (big_c * alive_sum)[codes]).reshape(shape)


def bg_nbd_prob_no_purchase(
    params: BgNbdParams, t: Any, frequency: Any, recency: Any, T: Any
) -> np.ndarray:
    """Probability of no purchase in ``(T, T + t]`` given the summary: ``P(X(t) = 0 | x, t_x, T)``.

    A customer who is dead at ``T`` buys nothing. One who is alive stays alive until their next
    purchase (dropout happens only right after a purchase), so they buy nothing in ``t`` exactly
    when their next exponential waiting time exceeds ``t``: probability ``exp(-lambda t)``. Given
    alive, ``lambda`` is ``Gamma(r+x, alpha+T)``, so ``E[exp(-lambda t)] = ((alpha+T) /
    (alpha+T+t))^(r+x)``. Hence ``1 - P(alive) (1 - ((alpha+T)/(alpha+T+t))^(r+x))``
    (derivation in ``docs/clv.md``).

    Parameters
    ----------
    params : the model parameters.
    t : horizon (same time unit as the summary), >= 0.
    frequency, recency, T : the summary (broadcastable arrays).

    Returns
    -------
    Array of probabilities.
    """
    x, t_x, age = _summary_arrays(frequency, recency, T)
    horizon = np.asarray(t, dtype="float64")
    if not np.all(np.isfinite(horizon)) or np.any(horizon < 0):
        raise CustomerValueError(f"the horizon t must be finite and >= 0, got {t!r}")
    alive = bg_nbd_prob_alive(params, x, t_x, age)
    buys = -np.expm1(-(params.r + x) * np.log1p(horizon / (params.alpha + age)))
    return 1.0 - alive * buys


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: purchase values ``Gamma(p, nu)`` with ``nu ~ Gamma(q, v)``."""

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        _check_positive(self.as_dict(), "Gamma-Gamma")

    def as_dict(self) -> dict[str, float]:
        """The parameters as ``{'p': ..., 'q': ..., 'v': ...}``."""
        return {"p": self.p, "q": self.q, "v": self.v}


@dataclass(frozen=True)
class GammaGammaFit:
    """A Gamma-Gamma maximum-likelihood fit: ``params`` and ``diagnostics``."""

    params: GammaGammaParams
    diagnostics: FitDiagnostics


GAMMA_GAMMA_NAMES: tuple[str, ...] = ("p", "q", "v")


def _spend_arrays(frequency: Any, monetary: Any) -> tuple[np.ndarray, np.ndarray]:
    x, m = (np.asarray(v, dtype="float64") for v in (frequency, monetary))
    x, m = np.broadcast_arrays(x, m)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(m))):
        raise CustomerValueError("Gamma-Gamma: frequency and monetary must be finite")
    if np.any(x < 1) or np.any(x != np.round(x)) or np.any(m <= 0):
        raise CustomerValueError(
            "Gamma-Gamma is fitted on repeat customers only: frequency must be a whole number "
            ">= 1 and monetary > 0 on every row"
        )
    return x, m


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, frequency: Any, monetary: Any
) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean repeat spend ``monetary`` (zbar).

    ``log Gamma(px+q) - log Gamma(px) - log Gamma(q) + q log v + (px-1) log zbar + px log x
    - (px+q) log(v + x zbar)``: the density of the mean of ``x`` values.

    Parameters
    ----------
    params : the model parameters.
    frequency : repeat purchases ``x`` (>= 1).
    monetary : mean value of those purchases (> 0).

    Returns
    -------
    Array of log-likelihoods.
    """
    x, m = _spend_arrays(frequency, monetary)
    data = _GammaGammaData(x.ravel(), m.ravel(), np.ones(x.size))
    return data.row_log_likelihood(np.log([params.p, params.q, params.v])).reshape(x.shape)


class _GammaGammaData:
    """Repeat-spend arrays prepared once: frequency-only terms on the distinct frequencies."""

    def __init__(self, x: np.ndarray, m: np.ndarray, w: np.ndarray) -> None:
        self.x, self.m, self.w = x, m, w
        self.total_weight = float(w.sum())
        self.x_values, self.x_index = np.unique(x, return_inverse=True)
        self.x_weight = np.bincount(self.x_index, weights=w, minlength=self.x_values.size)
        self.sum_spend = x * m
        self.log_m = np.log(m)
        self.log_x_values = np.log(self.x_values)

    def row_log_likelihood(self, theta: np.ndarray) -> np.ndarray:
        """Per-row log-likelihood."""
        p, q, v = np.exp(theta)
        pxv = p * self.x_values
        x_terms = special.gammaln(pxv + q) - special.gammaln(pxv) + pxv * self.log_x_values
        px = p * self.x
        return (
            x_terms[self.x_index]
            - special.gammaln(q)
            + q * theta[2]
            + (px - 1.0) * self.log_m
            - (px + q) * np.log(v + self.sum_spend)
        )

    def objective(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean negative log-likelihood (weighted) and its gradient in the log-parameters."""
        p, q, v = np.exp(theta)
        total, w, xv, xw = self.total_weight, self.w, self.x_values, self.x_weight
        pxv = p * xv
        px = p * self.x
        log_sum = np.log(v + self.sum_spend)
        x_terms = special.gammaln(pxv + q) - special.gammaln(pxv) + pxv * self.log_x_values
        ll = (
            _dot(xw, x_terms)
            + total * (q * theta[2] - special.gammaln(q))
            + _dot(w, (px - 1.0) * self.log_m - (px + q) * log_sum)
        )
        if not np.isfinite(ll):
            return math.inf, np.zeros_like(theta)
        psi_pq = special.digamma(pxv + q)
        w_log_sum = _dot(w, log_sum)
        grad = np.array(
            [
                p
                * (
                    _dot(xw, xv * (psi_pq - special.digamma(pxv) + self.log_x_values))
                    + _dot(w * self.x, self.log_m - log_sum)
                ),
                q * (_dot(xw, psi_pq) - total * special.digamma(q) + total * theta[2] - w_log_sum),
                q * total - v * _dot(w, (px + q) / (v + self.sum_spend)),
            ]
        )
        return -ll / total, -grad / total


def fit_gamma_gamma(frequency: Any, monetary: Any, weights: Any = None) -> GammaGammaFit:
    """Fit Gamma-Gamma by maximum likelihood on repeat customers.

    Parameters
    ----------
    frequency : repeat purchases per customer (>= 1).
    monetary : mean value of those repeat purchases (> 0).
    weights : optional customer count per row.

    Returns
    -------
    ``GammaGammaFit``; three starts on the log-parameters, the best kept.
    """
    x, m = (v.ravel() for v in _spend_arrays(frequency, monetary))
    w = _check_weights(weights, x.size)
    if x.size < 2:
        # rows may be weighted distinct summaries: count the customers, not the rows
        customers = float(w.sum())
        got = (
            f"got {customers:,.0f} who all have the same repeat purchases and mean spend"
            if customers >= 2
            else f"got {customers:,.0f}"
        )
        raise CustomerValueError(
            "Gamma-Gamma needs at least 2 repeat customers with positive spend and different"
            f" repeat-spend summaries, {got}"
        )
    data = _GammaGammaData(x, m, w)
    mean = float(np.average(m, weights=w))
    starts = [np.log([p, q, mean * (q - 1.0) / p]) for p, q in ((1.0, 2.0), (4.0, 4.0), (0.5, 1.5))]
    theta, diagnostics = _maximise(data.objective, starts, GAMMA_GAMMA_NAMES, data.total_weight)
    p, q, v = (float(value) for value in np.exp(theta))
    return GammaGammaFit(
        params=GammaGammaParams(p=p, q=q, v=v), diagnostics=replace(diagnostics, n_rows=int(x.size))
    )


def gamma_gamma_expected_order_value(
    params: GammaGammaParams, frequency: Any, monetary: Any
) -> np.ndarray:
    """Expected value of a customer's future purchases: ``E[Z | x, zbar]``.

    ``p (v + x zbar) / (p x + q - 1)``: a weighted mean of the population mean ``p v / (q-1)``
    and the customer's own mean ``zbar``, the weight of ``zbar`` growing with ``x``. Without a
    repeat purchase (``x = 0``, ``zbar`` NaN) it is the population mean; a negative or missing
    ``zbar`` (repeat days fully returned) counts as 0.

    Parameters
    ----------
    params : the model parameters (``q > 1``, else the mean spend is infinite).
    frequency : repeat purchases per customer (>= 0).
    monetary : mean repeat spend per customer (NaN allowed where ``frequency`` is 0).

    Returns
    -------
    Array of expected order values.
    """
    if not params.q > 1:
        raise CustomerValueError(
            f"Gamma-Gamma fit has q = {params.q:.3g} <= 1: the mean spend per purchase is "
            "infinite under the model, so no expected order value exists"
        )
    x = np.asarray(frequency, dtype="float64")
    m = np.asarray(monetary, dtype="float64")
    zbar = np.where((x > 0) & np.isfinite(m), np.maximum(m, 0.0), 0.0)
    return params.p * (params.v + x * zbar) / (params.p * x + params.q - 1.0)


# --------------------------------------------------------------------------------------------
# CLV
# --------------------------------------------------------------------------------------------


def discounted_expected_purchases(
    params: BgNbdParams,
    frequency: Any,
    recency: Any,
    T: Any,
    *,
    months: int = 12,
    month_length: float = 365.0 / 12.0,
    monthly_discount_rate: float = 0.01,
) -> np.ndarray:
    """Expected purchases of the next ``months`` months, each month discounted.

    ``sum_{m=1..months} (E[X(m L)] - E[X((m-1) L)]) / (1 + d)^m`` with ``L`` the month length:
    the expected purchases in month ``m`` are the difference of the conditional expectations at
    the month's end and start, discounted at the month's end.

    Parameters
    ----------
    params : BG/NBD parameters (time unit of the summary).
    frequency, recency, T : the summary.
    months : number of months (>= 1).
    month_length : month length in the summary's time unit (365 / 12 for days).
    monthly_discount_rate : ``d`` >= 0.

    Returns
    -------
    Array of discounted expected purchases.
    """
    x, t_x, age = _summary_arrays(frequency, recency, T)
    value = np.zeros(x.shape)
    previous = np.zeros(x.shape)
    for month in range(1, months + 1):
        cumulative = bg_nbd_expected_purchases(params, month * month_length, x, t_x, age)
        value += (cumulative - previous) / (1.0 + monthly_discount_rate) ** month
        previous = cumulative
    return value


def customer_lifetime_value(
    params: BgNbdParams,
    expected_order_value: Any,
    frequency: Any,
    recency: Any,
    T: Any,
    *,
    months: int = 12,
    month_length: float = 365.0 / 12.0,
    monthly_discount_rate: float = 0.01,
) -> np.ndarray:
    """Discounted value of the next ``months`` months per customer.

    ``discounted_expected_purchases(...) * E[Z]``: the expected purchases of each month times the
    expected order value, discounted by ``(1 + d)^m`` at the end of month ``m``.

    Parameters
    ----------
    params : BG/NBD parameters (time unit of the summary).
    expected_order_value : per customer, e.g. ``gamma_gamma_expected_order_value``.
    frequency, recency, T : the summary.
    months, month_length, monthly_discount_rate : see ``discounted_expected_purchases``.

    Returns
    -------
    Array of CLVs (money).
    """
    purchases = discounted_expected_purchases(
        params,
        frequency,
        recency,
        T,
        months=months,
        month_length=month_length,
        monthly_discount_rate=monthly_discount_rate,
    )
    return purchases * np.asarray(expected_order_value, dtype="float64")


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerValueResult:
    """Outcome of ``fit_customer_value``.

    Attributes
    ----------
    customer_value : one row per customer: ``customer_id``, ``expected_purchases_90d``,
        ``prob_no_purchase_90d``, ``expected_order_value``, ``clv_12m``, ``rfm_as_of`` (names
        follow the settings' horizon and months).
    model : one row per fitted model (``MODEL_COLUMNS``): ``bg_nbd`` and ``gamma_gamma``.
    summary : the repeat-purchase summary the models were fitted on.
    bg_nbd, gamma_gamma : the fits.
    settings : the settings used.
    """

    customer_value: pd.DataFrame
    model: pd.DataFrame
    summary: pd.DataFrame
    bg_nbd: BgNbdFit
    gamma_gamma: GammaGammaFit
    settings: CustomerValueSettings


def fit_summary_models(summary: pd.DataFrame) -> tuple[BgNbdFit, GammaGammaFit]:
    """Fit BG/NBD on every customer and Gamma-Gamma on the repeat customers of a summary.

    Parameters
    ----------
    summary : output of ``repeat_purchase_summary`` (days as time unit).

    Returns
    -------
    ``(bg_nbd fit, gamma_gamma fit)``. BG/NBD runs on the distinct (frequency, recency, T) rows
    weighted by their count. Gamma-Gamma uses customers with ``frequency > 0`` and ``monetary >
    0`` (repeat days that were fully returned have no positive spend to model).
    """
    _require_columns(summary, ("frequency", "recency", "T", "monetary"), "the summary")
    if summary.empty:
        raise CustomerValueError("no purchases before the cut-off: nothing to fit")
    collapsed = collapse_summary(summary)
    bg_nbd = fit_bg_nbd(
        collapsed["frequency"], collapsed["recency"], collapsed["T"], collapsed["weight"]
    )
    repeat = summary.loc[(summary["frequency"] > 0) & (summary["monetary"] > 0)]
    spend = collapse_summary(repeat, ("frequency", "monetary"))
    gamma_gamma = fit_gamma_gamma(spend["frequency"], spend["monetary"], spend["weight"])
    return bg_nbd, gamma_gamma


def predict_customer_value(
    summary: pd.DataFrame,
    bg_nbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    settings: CustomerValueSettings,
    horizon_days: float | None = None,
) -> pd.DataFrame:
    """Per-customer predictions from fitted parameters.

    Parameters
    ----------
    summary : output of ``repeat_purchase_summary``.
    bg_nbd, gamma_gamma : fitted parameters.
    settings : horizon, CLV months, discount rate and month length.
    horizon_days : overrides ``settings.horizon_days`` (the evaluation predicts its holdout).

    Returns
    -------
    ``customer_id``, ``expected_purchases``, ``prob_no_purchase``, ``prob_alive``,
    ``expected_order_value``, ``clv`` in the summary's order.
    """
    horizon = settings.horizon_days if horizon_days is None else horizon_days
    x = summary["frequency"].to_numpy(dtype="float64")
    t_x = summary["recency"].to_numpy(dtype="float64")
    age = summary["T"].to_numpy(dtype="float64")
    order_value = gamma_gamma_expected_order_value(
        gamma_gamma, x, summary["monetary"].to_numpy(dtype="float64")
    )
    # the BG/NBD predictions depend on (x, t_x, T) only: compute them once per distinct summary
    codes, firsts = _distinct_rows(x, t_x, age)
    x_d, t_x_d, age_d = x[firsts], t_x[firsts], age[firsts]
    discounted = discounted_expected_purchases(
        bg_nbd,
        x_d,
        t_x_d,
        age_d,
        months=settings.clv_months,
        month_length=settings.month_days,
        monthly_discount_rate=settings.monthly_discount_rate,
    )[codes]
    return pd.DataFrame(
        {
            "customer_id": summary["customer_id"].to_numpy(),
            "expected_purchases": bg_nbd_expected_purchases(bg_nbd, horizon, x_d, t_x_d, age_d)[
                codes
            ],
            "prob_no_purchase": bg_nbd_prob_no_purchase(bg_nbd, horizon, x_d, t_x_d, age_d)[codes],
            "prob_alive": bg_nbd_prob_alive(bg_nbd, x_d, t_x_d, age_d)[codes],
            "expected_order_value": order_value,
            "clv": discounted * order_value,
        }
    )


def _customer_value_frame(
    predictions: pd.DataFrame, settings: CustomerValueSettings, cutoff: pd.Timestamp
) -> pd.DataFrame:
    """The marts.customer_value columns of ``predict_customer_value``'s predictions."""
    return pd.DataFrame(
        {
            "customer_id": predictions["customer_id"],
            settings.purchases_column: predictions["expected_purchases"],
            settings.no_purchase_column: predictions["prob_no_purchase"],
            "expected_order_value": predictions["expected_order_value"],
            settings.clv_column: predictions["clv"],
            "rfm_as_of": cutoff,
        }
    )


def _model_row(
    name: str,
    params: Mapping[str, float],
    diagnostics: FitDiagnostics,
    window_start: pd.Timestamp,
    window_end: pd.Timestamp,
) -> dict[str, Any]:
    return {
        "model": name,
        "parameters": json.dumps({k: float(v) for k, v in params.items()}, sort_keys=True),
        "log_likelihood": diagnostics.log_likelihood,
        "n_customers": round(diagnostics.n_customers),
        "n_fit_rows": diagnostics.n_rows,
        "converged": diagnostics.converged,
        "boundary_parameters": json.dumps(list(diagnostics.boundary_parameters)),
        "data_window_start": window_start,
        "data_window_end": window_end,
    }


def _settings_summary(
    lines: pd.DataFrame, as_of: Any, settings: CustomerValueSettings
) -> pd.DataFrame:
    return repeat_purchase_summary(
        lines,
        as_of,
        customer_column=settings.customer_column,
        time_column=settings.time_column,
        amount_column=settings.amount_column,
    )


@dataclass(frozen=True)
class FittedValueModels:
    """Both models fitted on the repeat-purchase summary as of a cut-off, before any customer is
    valued (``fit_value_models``).

    Attributes
    ----------
    summary : the repeat-purchase summary the models were fitted on.
    bg_nbd, gamma_gamma : the fits.
    cutoff : the cut-off (exclusive) of the summary.
    settings : the settings used.
    """

    summary: pd.DataFrame
    bg_nbd: BgNbdFit
    gamma_gamma: GammaGammaFit
    cutoff: pd.Timestamp
    settings: CustomerValueSettings

    @property
    def window_start(self) -> pd.Timestamp:
        """The first purchase the fits saw."""
        return pd.Timestamp(self.summary["first_purchase_at"].min())

    def model_table(self) -> pd.DataFrame:
        """One row per model (``MODEL_COLUMNS``): ``bg_nbd`` and ``gamma_gamma``."""
        return pd.DataFrame(
            [
                _model_row(
                    name, fit.params.as_dict(), fit.diagnostics, self.window_start, self.cutoff
                )
                for name, fit in (("bg_nbd", self.bg_nbd), ("gamma_gamma", self.gamma_gamma))
            ],
            columns=list(MODEL_COLUMNS),
        )


def fit_value_models(
    lines: pd.DataFrame,
    as_of: Any,
    settings: Mapping[str, Any] | CustomerValueSettings | None = None,
) -> FittedValueModels:
    """Fit both models on the lines strictly before ``as_of``, without valuing anyone.

    Parameters are those of ``fit_customer_value``, which is this plus the predictions.
    """
    checked = customer_value_settings(settings)
    cutoff = _timestamp(as_of, "as_of")
    summary = _settings_summary(lines, cutoff, checked)
    bg_nbd, gamma_gamma = fit_summary_models(summary)
    return FittedValueModels(summary, bg_nbd, gamma_gamma, cutoff, checked)


def fit_customer_value(
    lines: pd.DataFrame,
    as_of: Any,
    settings: Mapping[str, Any] | CustomerValueSettings | None = None,
) -> CustomerValueResult:
    """Fit both models on the lines strictly before ``as_of`` and value every customer.

    Parameters
    ----------
    lines : transaction rows (per line or per order) with the settings' customer, time and
        amount columns (by default those of ``marts.fct_sales_lines``). Rows at or after
        ``as_of`` are ignored.
    as_of : cut-off (exclusive), e.g. ``var('rfm_as_of')``.
    settings : see ``CustomerValueSettings``.

    Returns
    -------
    ``CustomerValueResult``: ``customer_value`` (one row per customer with a purchase before
    ``as_of``), ``model`` (one row per model: ``bg_nbd`` with r, alpha (days), a, b and
    ``gamma_gamma`` with p, q, v; log-likelihood, customers, data window from the first line to
    ``as_of``), the summary and the fits.
    """
    fitted = fit_value_models(lines, as_of, settings)
    customer_value = _customer_value_frame(
        predict_customer_value(
            fitted.summary, fitted.bg_nbd.params, fitted.gamma_gamma.params, fitted.settings
        ),
        fitted.settings,
        fitted.cutoff,
    )
    return CustomerValueResult(
        customer_value=customer_value,
        model=fitted.model_table(),
        summary=fitted.summary,
        bg_nbd=fitted.bg_nbd,
        gamma_gamma=fitted.gamma_gamma,
        settings=fitted.settings,
    )


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def auc(score: Any, positive: Any) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``positive`` (ties count half).

    Parameters
    ----------
    score : higher means more likely positive.
    positive : the true classes.

    Returns
    -------
    AUC in [0, 1], NaN when one class is empty.
    """
    s = np.asarray(score, dtype="float64")
    y = np.asarray(positive, dtype=bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def top_share(predicted: Any, actual: Any, share: float = 0.1) -> float:
    """Share of the total ``actual`` held by the ``share`` of customers with the highest
    ``predicted``.

    The top ``share * n`` customers (a real number) are taken by descending prediction; a group
    of tied predictions straddling the cut counts with the fraction that fits, which is the
    expected share under a random tie-break.

    Parameters
    ----------
    predicted, actual : per customer.
    share : fraction of customers (0.1 = top decile).

    Returns
    -------
    The captured share, NaN when the actual total is 0.
    """
    pred = np.asarray(predicted, dtype="float64")
    act = np.asarray(actual, dtype="float64")
    total = act.sum()
    if pred.size == 0 or total == 0:
        return math.nan
    values, group = np.unique(-pred, return_inverse=True)
    counts = np.bincount(group, minlength=values.size).astype("float64")
    sums = np.bincount(group, weights=act, minlength=values.size)
    capacity = share * pred.size
    before = np.concatenate([[0.0], np.cumsum(counts)[:-1]])
    taken = np.clip(capacity - before, 0.0, counts) / counts
    return float((taken * sums).sum() / total)


def _metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    error = predicted - actual
    if predicted.size > 1 and np.std(predicted) > 0 and np.std(actual) > 0:
        pearson = float(np.corrcoef(predicted, actual)[0, 1])
    else:
        pearson = math.nan
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "pearson": pearson,
        "total_error": float(error.sum()),
        "top_decile_share": top_share(predicted, actual),
    }


def evaluation_table(
    summary: pd.DataFrame,
    actuals: pd.DataFrame,
    predictions: pd.DataFrame,
    holdout_days: float,
    calibration_end: pd.Timestamp,
) -> pd.DataFrame:
    """Score the model and the naive baseline against the holdout.

    Parameters
    ----------
    summary : calibration summary (``repeat_purchase_summary`` at ``calibration_end``).
    actuals : ``holdout_actuals`` of the holdout window (customers absent bought nothing).
    predictions : ``predict_customer_value`` of the summary for ``holdout_days``.
    holdout_days : holdout length in days.
    calibration_end : start of the holdout.

    Returns
    -------
    ``EVALUATION_COLUMNS``, four rows: (``bg_nbd_gamma_gamma``, ``naive_rate``) x
    (``purchases``, ``spend``). The baseline predicts ``frequency / T * holdout_days`` purchase
    days and that times the customer's mean spend per purchase day (all calibration days);
    its no-purchase score is the Poisson ``exp(-frequency / T * holdout_days)``.
    ``auc_no_purchase`` is on the ``purchases`` rows and null on the ``spend`` rows.
    """
    merged = summary[["customer_id", "frequency", "T", "total_spend"]].merge(
        actuals, on="customer_id", how="left"
    )
    actual_purchases = merged["purchases"].fillna(0).to_numpy(dtype="float64")
    actual_spend = merged["spend"].fillna(0.0).to_numpy(dtype="float64")
    no_purchase = actual_purchases == 0
    rate = merged["frequency"].to_numpy(dtype="float64") / merged["T"].to_numpy(dtype="float64")
    naive_purchases = rate * holdout_days
    mean_day_spend = merged["total_spend"].to_numpy(dtype="float64") / (
        merged["frequency"].to_numpy(dtype="float64") + 1.0
    )
    predicted = predictions.set_index("customer_id").loc[merged["customer_id"]]
    model_purchases = predicted["expected_purchases"].to_numpy(dtype="float64")
    model_spend = model_purchases * predicted["expected_order_value"].to_numpy(dtype="float64")
    rows = []
    for name, purchases, spend, no_purchase_score in (
        (
            MODEL_NAME,
            model_purchases,
            model_spend,
            predicted["prob_no_purchase"].to_numpy(dtype="float64"),
        ),
        (
            BASELINE_NAME,
            naive_purchases,
            naive_purchases * mean_day_spend,
            np.exp(-naive_purchases),
        ),
    ):
        for target, pred, act in (
            ("purchases", purchases, actual_purchases),
            ("spend", spend, actual_spend),
        ):
            rows.append(
                {
                    "model": name,
                    "target": target,
                    **_metrics(pred, act),
                    "auc_no_purchase": auc(no_purchase_score, no_purchase)
                    if target == "purchases"
                    else math.nan,
                    "n_customers": len(merged),
                    "calibration_end": calibration_end,
                    "holdout_end": calibration_end + pd.Timedelta(days=holdout_days),
                }
            )
    return pd.DataFrame(rows, columns=list(EVALUATION_COLUMNS))


def evaluate_customer_value(
    lines: pd.DataFrame,
    calibration_end: Any,
    holdout_days: int = 91,
    settings: Mapping[str, Any] | CustomerValueSettings | None = None,
) -> pd.DataFrame:
    """Temporal-split evaluation: fit before ``calibration_end``, score the next ``holdout_days``.

    The fit sees only rows strictly before ``calibration_end`` (``repeat_purchase_summary``
    filters them); the holdout rows serve only as actuals. Customers are those with a purchase
    before ``calibration_end`` (new customers of the holdout have no history to predict from).

    Parameters
    ----------
    lines : transaction rows as for ``fit_customer_value`` (may contain the future).
    calibration_end : cut-off of the calibration period and start of the holdout.
    holdout_days : holdout length in days (predictions are for exactly this horizon).
    settings : see ``CustomerValueSettings`` (column names, CLV settings).

    Returns
    -------
    ``EVALUATION_COLUMNS`` (see ``evaluation_table``).
    """
    settings = customer_value_settings(settings)
    if isinstance(holdout_days, bool) or not isinstance(holdout_days, int | np.integer):
        raise CustomerValueError(f"holdout_days must be a whole number >= 1, got {holdout_days!r}")
    if holdout_days < 1:
        raise CustomerValueError(f"holdout_days must be a whole number >= 1, got {holdout_days!r}")
    cutoff = _timestamp(calibration_end, "calibration_end")
    return evaluate_fitted(fit_value_models(lines, cutoff, settings), lines, holdout_days)


def evaluate_fitted(
    fitted: FittedValueModels,
    lines: pd.DataFrame,
    holdout_days: int,
    holdout_amount_column: str | None = None,
) -> pd.DataFrame:
    """Score models fitted at a cut-off (``fit_value_models``) on the ``holdout_days`` after it:
    predict that horizon for every customer of the fit, take the actuals from ``lines`` and
    return ``evaluation_table``. ``holdout_amount_column`` is the spend the holdout is scored on
    (default: the settings' amount column, the one the fit read); the build scores spend net of
    every return while its fit saw spend as known at the cut-off."""
    settings = fitted.settings
    predictions = predict_customer_value(
        fitted.summary,
        fitted.bg_nbd.params,
        fitted.gamma_gamma.params,
        settings,
        horizon_days=holdout_days,
    )
    actuals = holdout_actuals(
        lines,
        fitted.cutoff,
        holdout_days,
        customer_column=settings.customer_column,
        time_column=settings.time_column,
        amount_column=holdout_amount_column or settings.amount_column,
    )
    return evaluation_table(fitted.summary, actuals, predictions, holdout_days, fitted.cutoff)


# --------------------------------------------------------------------------------------------
# the dbt model's record
# --------------------------------------------------------------------------------------------

PARAMETER_NAMES: tuple[str, ...] = ("r", "alpha", "a", "b", "p", "q", "v")


def _fitted_models(purpose: str, fitted: FittedValueModels) -> list[dict[str, Any]]:
    """One row per fitted model of a fit: its parameters (null where they do not apply)."""
    rows = []
    for name, fit in (("bg_nbd", fitted.bg_nbd), ("gamma_gamma", fitted.gamma_gamma)):
        params = fit.params.as_dict()
        rows.append(
            {
                "purpose": purpose,
                "model": name,
                **{key: params.get(key) for key in PARAMETER_NAMES},
                "log_likelihood": fit.diagnostics.log_likelihood,
                "n_customers": round(fit.diagnostics.n_customers),
                "n_fit_rows": fit.diagnostics.n_rows,
                "converged": fit.diagnostics.converged,
                "data_window_start": fitted.window_start,
                "data_window_end": fitted.cutoff,
            }
        )
    return rows


def _purchase_day_settings(
    settings: Mapping[str, Any] | CustomerValueSettings | None,
    monthly_discount_rate: float | str | None,
    known_at: Literal["rfm_as_of", "calibration_end"],
) -> CustomerValueSettings:
    """The settings of a fit on ``int_customer_value__purchase_days``: each fit sees spend as it
    was known at its cut-off (``spend_known_at_<known_at>``; returns made later do not reduce it).
    The holdout is scored on spend net of every return."""
    base = customer_value_settings(settings).as_dict()
    base["time_column"] = "purchased_at"
    if monthly_discount_rate is not None:
        base["monthly_discount_rate"] = float(monthly_discount_rate)
    return customer_value_settings({**base, "amount_column": f"spend_known_at_{known_at}"})


def customer_value_schema(
    settings: Mapping[str, Any] | CustomerValueSettings | None = None,
) -> Mapping[str, str]:
    """The columns and SQL types of ``customer_value_scorer``'s rows (marts.customer_value's)."""
    checked = customer_value_settings(settings)
    return MappingProxyType(
        {
            "customer_id": "integer",
            checked.purchases_column: "double",
            checked.no_purchase_column: "double",
            "expected_order_value": "double",
            checked.clv_column: "double",
            "rfm_as_of": "timestamp",
        }
    )


def production_params(models: pd.DataFrame) -> tuple[BgNbdParams, GammaGammaParams]:
    """The production fit's parameters from ``ml.clv_model``'s rows (columns ``purpose``,
    ``model`` and the parameters). Raises CustomerValueError when a production model is missing
    or appears twice."""
    _require_columns(models, ("purpose", "model", *PARAMETER_NAMES), "the fitted models")
    production = models.loc[models["purpose"] == "production"]
    rows = {}
    for name in ("bg_nbd", "gamma_gamma"):
        found = production.loc[production["model"] == name]
        if len(found) != 1:
            raise CustomerValueError(
                f"expected one production {name} model in the fitted models, found {len(found)}"
            )
        rows[name] = found.iloc[0]
    bg_nbd = BgNbdParams(**{key: float(rows["bg_nbd"][key]) for key in BG_NBD_NAMES})
    gamma_gamma = GammaGammaParams(**{key: float(rows["gamma_gamma"][key]) for key in "pqv"})
    return bg_nbd, gamma_gamma


def customer_value_scorer(
    models: pd.DataFrame,
    as_of: Any,
    settings: Mapping[str, Any] | CustomerValueSettings | None = None,
    monthly_discount_rate: float | str | None = None,
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """What ``ml_customer_value_scores`` applies to every customer's purchase days.

    Parameters
    ----------
    models : ``ml.clv_model`` (the production fit's parameters are used).
    as_of, settings, monthly_discount_rate : as for ``customer_value_record``.

    Returns
    -------
    A picklable function from the purchase days of some customers (every purchase day of each
    customer it is given; ``int_customer_value__purchase_days``) to their rows of
    marts.customer_value (``customer_value_schema``), sorted by customer. A customer's row
    depends on that customer's days only, so scoring the customers in groups (on Spark) gives
    the same rows as scoring them all at once. The parameters and settings are checked here, so
    a bad one stops the model before any customer is scored.
    """
    bg_nbd, gamma_gamma = production_params(models)
    checked = _purchase_day_settings(settings, monthly_discount_rate, "rfm_as_of")
    cutoff = _timestamp(as_of, "as_of")
    return functools.partial(_score_customer_value, bg_nbd, gamma_gamma, checked, cutoff)


def _score_customer_value(
    bg_nbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    settings: CustomerValueSettings,
    cutoff: pd.Timestamp,
    purchase_days: pd.DataFrame,
) -> pd.DataFrame:
    summary = _settings_summary(purchase_days, cutoff, settings)
    scored = _customer_value_frame(
        predict_customer_value(summary, bg_nbd, gamma_gamma, settings), settings, cutoff
    )
    scored["customer_id"] = scored["customer_id"].astype("int32")
    return scored.reset_index(drop=True)


def _require_finite_mean_spend(fitted: FittedValueModels, var_name: str) -> None:
    """Raise `CustomerValueError` naming the var and the fix when the Gamma-Gamma fit before it
    has ``q <= 1``: the model's mean spend per purchase is then infinite, so no order value or
    CLV exists. It happens on small files with a few very large accounts among few repeat buyers
    (``prepare`` checks their number, not the spread of their spend)."""
    q = fitted.gamma_gamma.params.q
    if q > 1:
        return
    n_repeat = fitted.gamma_gamma.diagnostics.n_customers
    cutoff = fitted.cutoff
    shown = f"{cutoff:%Y-%m-%d}" if cutoff == cutoff.normalize() else f"{cutoff}"
    raise CustomerValueError(
        f"the spend model (Gamma-Gamma) fitted on the {n_repeat:,.0f} customers with repeat"
        f" spend before var {var_name} = {shown} has q = {q:.3g} <= 1: their spend per purchase"
        " varies too much for so few customers to give a finite mean order value, so no"
        " lifetime value can be computed. Fix: build on a file with more repeat customers, or,"
        f" if the data goes on after it, set {var_name} later (--vars '{{{var_name}:"
        " YYYY-MM-DD}')"
    )


def customer_value_record(
    purchase_days: pd.DataFrame,
    as_of: Any,
    calibration_end: Any,
    settings: Mapping[str, Any] | CustomerValueSettings | None = None,
    monthly_discount_rate: float | str | None = None,
) -> pa.Table:
    """What ``ml_customer_value_fit`` returns: one row per run (`retail_segments.ml.results`).

    Parameters
    ----------
    purchase_days : one row per customer and purchase day (``int_customer_value__purchase_days``:
        ``customer_id``, ``purchased_at``, ``spend`` net of every return, and
        ``spend_known_at_rfm_as_of`` / ``spend_known_at_calibration_end`` net of the returns made
        before each cut-off), or line-level rows with those columns.
    as_of : the production fit's cut-off (``var('rfm_as_of')``).
    calibration_end : the evaluation's cut-off (``var('clv_calibration_end')``); the holdout is the
        ``settings.holdout_days`` after it.
    settings : the model's ``value`` meta block (see ``CustomerValueSettings``).
    monthly_discount_rate : ``var('clv_monthly_discount_rate')`` (overrides the settings'; a
        string from the meta block is read as a number).

    Returns
    -------
    One row: ``rfm_as_of``, ``calibration_end``, ``holdout_end``, ``n_customers``, and the nested
    results ``models`` (one row per fitted model and purpose, production or calibration) and
    ``evaluation`` (one row per model and target). Every customer is valued by
    ``customer_value_scorer`` with the production models (``ml_customer_value_scores``).
    """
    known_at_as_of = _purchase_day_settings(settings, monthly_discount_rate, "rfm_as_of")
    known_at_cutoff = _purchase_day_settings(settings, monthly_discount_rate, "calibration_end")
    cutoff = _timestamp(calibration_end, "calibration_end")
    production = fit_value_models(purchase_days, as_of, known_at_as_of)
    _require_finite_mean_spend(production, "rfm_as_of")
    calibration = fit_value_models(purchase_days, cutoff, known_at_cutoff)
    _require_finite_mean_spend(calibration, "clv_calibration_end")
    holdout_days = known_at_cutoff.holdout_days
    evaluation = evaluate_fitted(calibration, purchase_days, holdout_days, "spend")
    models = pd.DataFrame(
        _fitted_models("production", production) + _fitted_models("calibration", calibration)
    )
    return fit_record(
        {
            "rfm_as_of": production.cutoff,
            "calibration_end": cutoff,
            "holdout_end": cutoff + pd.Timedelta(days=holdout_days),
            "n_customers": len(production.summary),
        },
        {
            "models": models,
            "evaluation": evaluation,
        },
    )

"""Tests of the BG/NBD + Gamma-Gamma customer value module (no dbt, no DuckDB).

Reference fits on the CDNOW sample of the BG/NBD paper, parameter recovery and Monte Carlo checks
on data simulated from known parameters, the numerics of the likelihood and of the expected
purchases, the evaluation metrics and a leakage test of the temporal split.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special
from sklearn.metrics import roc_auc_score

from retail_segments.ml import value as clv
from retail_segments.ml.results import result_frame
from retail_segments.ml.value import (
    BgNbdParams,
    CustomerValueError,
    CustomerValueSettings,
    GammaGammaParams,
)
from retail_segments_dev.clv_simulation import simulate_customers

FIXTURES = Path(__file__).parent / "fixtures"

# Published fits on the CDNOW sample: Fader, Hardie and Lee (2005), BG/NBD, weeks as time unit;
# Fader and Hardie (2013), Gamma-Gamma on the 946 repeat customers.
CDNOW_BG_NBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_BG_NBD_LL = -9582.4
CDNOW_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.45}

# daily parameters for simulations: dropout matters (mean p = 0.23) and rates are retail-like
TRUE_BG = BgNbdParams(r=0.6, alpha=30.0, a=0.9, b=3.0)
TRUE_GG = GammaGammaParams(p=3.0, q=4.0, v=200.0)


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The CDNOW calibration summary (weeks) as distributed with the paper."""
    frame = pd.read_csv(FIXTURES / "cdnow_summary.csv", comment="#")
    return frame.rename(
        columns={"ID": "customer_id", "x": "frequency", "t_x": "recency", "zbar": "monetary"}
    )


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    """60,000 customers simulated from TRUE_BG / TRUE_GG, ages 30..365 days, 90-day holdout."""
    ages = np.random.default_rng(11).uniform(30.0, 365.0, 60_000)
    return simulate_customers(TRUE_BG, TRUE_GG, ages, horizon=90.0, seed=12)


def synthetic_lines(n_customers: int = 400, seed: int = 3) -> pd.DataFrame:
    """Order lines over 2011: first purchase in the first 300 days, Poisson repeat purchases,
    one to three lines per purchase (so lines, orders and days differ)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2011-01-01")
    customers, times, amounts = [], [], []
    for customer in range(n_customers):
        rate = rng.gamma(0.8, 1 / 30)
        t = rng.uniform(0, 300)
        while t < 365:
            for _ in range(rng.integers(1, 4)):
                customers.append(10_000 + customer)
                times.append(start + pd.Timedelta(days=t))
                amounts.append(rng.gamma(2.0, 20.0))
            t += rng.exponential(1 / rate)
    return pd.DataFrame({"customer_id": customers, "invoice_at": times, "total_price": amounts})


def expected_purchases_by_integral(p: BgNbdParams, t: float, x: int, t_x: float, T: float) -> float:
    """E[X(t) | x, t_x, T] = P(alive) E_q[(1 - (1 + q t / (alpha+T))^-(r+x)) / q] with the dropout
    probability q ~ Beta(a, b+x) (the alive customer's posterior), by adaptive quadrature: an
    independent route to the hypergeometric closed form."""
    k = p.r + x
    scaled = t / (p.alpha + T)
    a, c = p.a, p.b + x

    def g(q: float) -> float:
        return -math.expm1(-k * math.log1p(q * scaled)) / q if q > 0 else k * scaled

    mean_q = a / (a + c)
    if a < 1:  # q = s^(1/a) removes the q^(a-1) singularity at 0
        norm = -special.betaln(a, c) - math.log(a)

        def f(s: float) -> float:
            q = s ** (1 / a)
            return g(q) * math.exp((c - 1) * math.log1p(-q) + norm) if q < 1 else 0.0

        points = [mean_q**a]
    else:
        norm = -special.betaln(a, c)

        def f(q: float) -> float:
            if not 0 < q < 1:
                return 0.0
            return g(q) * math.exp((a - 1) * math.log(q) + (c - 1) * math.log1p(-q) + norm)

        points = [mean_q]
    value, _ = integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-12, limit=500, points=points)
    return float(clv.bg_nbd_prob_alive(p, x, t_x, T)) * value


def expected_purchases_paper_formula(
    p: BgNbdParams, t: float, x: int, t_x: float, T: float
) -> float:
    """Equation (10) of the BG/NBD paper, evaluated literally with scipy's hyp2f1."""
    r, alpha, a, b = p.r, p.alpha, np.float64(p.a), p.b
    with np.errstate(all="ignore"):
        z = t / (alpha + T + t)
        bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * special.hyp2f1(
            r + x, b + x, a + b + x - 1, z
        )
        numerator = (a + b + x - 1) / (a - 1) * bracket
        denominator = 1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        return float(numerator / denominator)


# ------------------------------------------------------------------------------------------
# reference fits on the CDNOW sample
# ------------------------------------------------------------------------------------------


def test_cdnow_bg_nbd_fit_reproduces_the_paper(cdnow: pd.DataFrame) -> None:
    fit = clv.fit_bg_nbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert len(cdnow) == 2357
    assert fit.diagnostics.converged
    # the paper prints three decimals: the estimate must round to them (within half a unit)
    for name, published in CDNOW_BG_NBD.items():
        assert getattr(fit.params, name) == pytest.approx(published, abs=5e-4), name
    assert fit.diagnostics.log_likelihood == pytest.approx(CDNOW_BG_NBD_LL, abs=0.05)
    assert fit.diagnostics.n_customers == 2357


def test_cdnow_likelihood_at_the_published_parameters(cdnow: pd.DataFrame) -> None:
    """The likelihood alone (no optimiser): at the published (rounded) parameters it sums to the
    published -9582.4, and the maximum is above it by less than the rounding can explain."""
    published = BgNbdParams(**CDNOW_BG_NBD)
    ll = clv.bg_nbd_log_likelihood(published, cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert ll.shape == (2357,)
    assert ll.sum() == pytest.approx(CDNOW_BG_NBD_LL, abs=0.05)
    fit = clv.fit_bg_nbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert 0 <= fit.diagnostics.log_likelihood - ll.sum() < 0.01


def test_cdnow_gamma_gamma_fit_reproduces_the_note(cdnow: pd.DataFrame) -> None:
    repeat = cdnow.loc[cdnow["frequency"] > 0]
    assert len(repeat) == 946
    fit = clv.fit_gamma_gamma(repeat["frequency"], repeat["monetary"])
    assert fit.diagnostics.converged
    for name, published in CDNOW_GAMMA_GAMMA.items():
        assert getattr(fit.params, name) == pytest.approx(published, abs=0.01), name


def test_gamma_gamma_likelihood_is_the_density_of_the_mean_spend(cdnow: pd.DataFrame) -> None:
    """The closed form against the model it integrates: the mean of x Gamma(p, nu) values is
    Gamma(p x, x nu), and nu ~ Gamma(q, v); and the fit's log-likelihood is its sum."""
    repeat = cdnow.loc[cdnow["frequency"] > 0]
    fit = clv.fit_gamma_gamma(repeat["frequency"], repeat["monetary"])
    ll = clv.gamma_gamma_log_likelihood(fit.params, repeat["frequency"], repeat["monetary"])
    assert ll.sum() == pytest.approx(fit.diagnostics.log_likelihood, rel=1e-12)
    p, q, v = fit.params.p, fit.params.q, fit.params.v
    for x, zbar in [(1, 9.0), (2, 35.5), (7, 18.0), (20, 140.0)]:

        def joint(nu: float, x: int = x, zbar: float = zbar) -> float:
            mean = special.gammaln(p * x) * -1 + p * x * math.log(x * nu)
            mean += (p * x - 1) * math.log(zbar) - x * nu * zbar
            prior = q * math.log(v) - special.gammaln(q) + (q - 1) * math.log(nu) - v * nu
            return math.exp(mean + prior)

        density, _ = integrate.quad(joint, 0, np.inf, limit=200)
        closed = clv.gamma_gamma_log_likelihood(fit.params, [x], [zbar])[0]
        assert closed == pytest.approx(math.log(density), abs=1e-7), (x, zbar)


def test_weighted_collapse_gives_the_same_fit(cdnow: pd.DataFrame) -> None:
    collapsed = clv.collapse_summary(cdnow)
    assert len(collapsed) < len(cdnow) / 2  # CDNOW has many identical (0, 0, T) rows
    assert collapsed["weight"].sum() == len(cdnow)
    full = clv.fit_bg_nbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    weighted = clv.fit_bg_nbd(
        collapsed["frequency"], collapsed["recency"], collapsed["T"], collapsed["weight"]
    )
    for name in clv.BG_NBD_NAMES:
        assert getattr(weighted.params, name) == pytest.approx(getattr(full.params, name), rel=1e-6)
    assert weighted.diagnostics.log_likelihood == pytest.approx(
        full.diagnostics.log_likelihood, abs=1e-6
    )
    assert weighted.diagnostics.n_customers == len(cdnow)
    assert weighted.diagnostics.n_rows == len(collapsed)


def test_weights_equal_repeated_rows_for_gamma_gamma(cdnow: pd.DataFrame) -> None:
    repeat = cdnow.loc[cdnow["frequency"] > 0].head(300)
    doubled = pd.concat([repeat, repeat])
    by_rows = clv.fit_gamma_gamma(doubled["frequency"], doubled["monetary"])
    by_weight = clv.fit_gamma_gamma(repeat["frequency"], repeat["monetary"], np.full(300, 2.0))
    for name in clv.GAMMA_GAMMA_NAMES:
        assert getattr(by_weight.params, name) == pytest.approx(
            getattr(by_rows.params, name), rel=1e-6
        )
    assert by_weight.diagnostics.log_likelihood == pytest.approx(
        by_rows.diagnostics.log_likelihood, abs=1e-6
    )


def test_analytic_gradients_match_finite_differences(cdnow: pd.DataFrame) -> None:
    x = cdnow["frequency"].to_numpy(float)
    data = clv._BgNbdData(
        x, cdnow["recency"].to_numpy(float), cdnow["T"].to_numpy(float), x * 0 + 1
    )
    repeat = cdnow.loc[cdnow["frequency"] > 0]
    spend = clv._GammaGammaData(
        repeat["frequency"].to_numpy(float), repeat["monetary"].to_numpy(float), np.ones(946)
    )
    for objective, theta in (
        (data.objective, np.log([0.3, 5.0, 0.6, 2.0])),
        (data.objective, np.log([2.0, 1.0, 1e-6, 50.0])),
        (spend.objective, np.log([5.0, 3.0, 12.0])),
    ):
        numeric = optimize.approx_fprime(theta, lambda t, f=objective: f(t)[0], 1e-7)
        np.testing.assert_allclose(objective(theta)[1], numeric, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------
# numerics
# ------------------------------------------------------------------------------------------


def test_likelihood_reaches_the_nbd_limit_as_a_goes_to_zero() -> None:
    """With a -> 0 nobody drops out and BG/NBD becomes the NBD; the likelihood must get there
    smoothly (no log Gamma(a) cancellation), also for x = 0 and a huge T. (The limit is not
    uniform in T - t_x: a repeat buyer silent for ages is dead even for tiny a, so the repeat
    rows here have moderate gaps.)"""
    x = np.array([0, 0, 1, 5, 40])
    t_x = np.array([0.0, 0.0, 3.0, 80.0, 300.0])
    age = np.array([10.0, 1e9, 50.0, 100.0, 310.0])
    r, alpha, b = 0.7, 20.0, 3.0
    nbd = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        - (r + x) * np.log(alpha + age)
    )
    for a in (1e-8, 1e-12, 1e-300):
        ll = clv.bg_nbd_log_likelihood(BgNbdParams(r, alpha, a, b), x, t_x, age)
        assert np.all(np.isfinite(ll))
        np.testing.assert_allclose(ll, nbd, rtol=1e-7)


def test_likelihood_is_finite_at_extreme_rows() -> None:
    params = BgNbdParams(r=0.24, alpha=4.4, a=0.79, b=2.4)
    ll = clv.bg_nbd_log_likelihood(
        params,
        [0, 0, 3000, 3000, 1],
        [0.0, 0.0, 100.0, 1.0, 1e-9],
        [1e-9, 1e12, 100.0, 1e7, 1e12],
    )
    assert np.all(np.isfinite(ll))


def test_a_fit_where_nobody_drops_out_stays_finite() -> None:
    """Simulated without dropout and every repeat buyer seen on the last day: the data say
    nothing about dropout, the estimated mean dropout a / (a + b) runs to 0 along a flat ridge.
    The fit must still end at a stationary point with the purchase rate recovered, and the
    predictions must stay finite with P(alive) = 1."""
    ages = np.random.default_rng(5).uniform(100, 365, 5000)
    data = simulate_customers(BgNbdParams(0.8, 50.0, 1e-9, 1.0), TRUE_GG, ages, seed=6)
    recency = np.where(data["frequency"] > 0, data["T"], 0.0)
    fit = clv.fit_bg_nbd(data["frequency"], recency, data["T"])
    params = fit.params
    assert params.a / (params.a + params.b) < 1e-6
    assert params.r == pytest.approx(0.8, rel=0.1)
    assert params.alpha == pytest.approx(50.0, rel=0.1)
    assert fit.diagnostics.converged
    assert np.isfinite(fit.diagnostics.log_likelihood)
    alive = clv.bg_nbd_prob_alive(params, data["frequency"], recency, data["T"])
    assert alive.min() > 0.999
    expected = clv.bg_nbd_expected_purchases(params, 90.0, data["frequency"], recency, data["T"])
    assert np.all(np.isfinite(expected)) and np.all(expected > 0)


def test_expected_purchases_when_the_dropout_distribution_is_degenerate() -> None:
    """A fit can also end with huge a and b (every customer has the same dropout probability
    mu = a / (a + b)); then E[X(t)] is P(alive) (1 - (1 + mu t/(alpha+T))^-(r+x)) / mu, and the
    paper's series (terms growing like (a)_n z^n / n!) would overflow."""
    params = BgNbdParams(r=0.84, alpha=32.2, a=1.3e6, b=4.85e8)
    mu = params.a / (params.a + params.b)
    for x, t_x, age, t in (
        (0, 0.0, 100.0, 91.0),
        (5, 80.0, 120.0, 91.0),
        (40, 200.0, 240.0, 365.0),
    ):
        k = params.r + x
        limit = -math.expm1(-k * math.log1p(mu * t / (params.alpha + age))) / mu
        alive = float(clv.bg_nbd_prob_alive(params, x, t_x, age))
        ours = float(clv.bg_nbd_expected_purchases(params, t, x, t_x, age))
        assert ours == pytest.approx(alive * limit, rel=1e-6)


@pytest.mark.parametrize("a", [0.05, 0.5, 1.0 - 1e-7, 1.0, 1.0 + 1e-9, 1.7, 4.0, 30.0])
def test_expected_purchases_match_the_integral(a: float) -> None:
    params = BgNbdParams(r=0.8, alpha=40.0, a=a, b=3.0)
    for x, t_x, age in ((0, 0.0, 50.0), (1, 10.0, 200.0), (7, 80.0, 120.0), (150, 360.0, 365.0)):
        for t in (1.0, 90.0, 365.0):
            ours = float(clv.bg_nbd_expected_purchases(params, t, x, t_x, age))
            reference = expected_purchases_by_integral(params, t, x, t_x, age)
            assert ours == pytest.approx(reference, rel=1e-9), (x, t)


def test_expected_purchases_match_the_paper_formula_where_it_is_well_conditioned(
    cdnow: pd.DataFrame,
) -> None:
    params = BgNbdParams(**CDNOW_BG_NBD)
    ours = clv.bg_nbd_expected_purchases(
        params, 39.0, cdnow["frequency"], cdnow["recency"], cdnow["T"]
    )
    literal = [
        expected_purchases_paper_formula(params, 39.0, x, t_x, age)
        for x, t_x, age in cdnow[["frequency", "recency", "T"]].itertuples(index=False)
    ]
    np.testing.assert_allclose(ours, literal, rtol=1e-10)


def test_the_transformed_series_holds_where_the_paper_formula_breaks() -> None:
    """Regime check: the literal formula is 0/0 at a = 1, loses digits near it, and overflows
    for many purchases (hyp2f1 ~ (1-z)^-(r+x)); the Euler-transformed series matches the
    integral in all three places."""
    cases = [
        (BgNbdParams(0.8, 40.0, 1.0, 3.0), 90.0, 7, 80.0, 120.0),
        (BgNbdParams(0.8, 40.0, 1.0 + 1e-9, 3.0), 90.0, 150, 360.0, 365.0),
        (BgNbdParams(0.24, 4.4, 0.79, 2.4), 100.0, 3000, 100.0, 100.0),
    ]
    for params, t, x, t_x, age in cases:
        reference = expected_purchases_by_integral(params, t, x, t_x, age)
        ours = float(clv.bg_nbd_expected_purchases(params, t, x, t_x, age))
        literal = expected_purchases_paper_formula(params, t, x, t_x, age)
        assert ours == pytest.approx(reference, rel=1e-9)
        assert literal != pytest.approx(reference, rel=1e-6)


def test_alive_sum_is_the_hypergeometric_difference_quotient() -> None:
    """sum NB_n D_n = [1 - (1-z)^k 2F1(k, c; C; z)] / (a - 1) with C = c + a - 1, checked against
    scipy's hyp2f1 where that is well conditioned (a away from 1, moderate k)."""
    k = np.array([0.3, 2.5, 8.0, 40.0])
    c = np.array([3.0, 12.0, 20.0, 45.0])
    z = np.array([0.3, 0.9, 0.6, 0.2])
    for a in (0.4, 2.0, 6.0):
        big_c = c + a - 1
        expected = (1 - (1 - z) ** k * special.hyp2f1(k, c, big_c, z)) / (a - 1)
        np.testing.assert_allclose(clv._alive_purchase_sum(k, c, big_c, z), expected, rtol=1e-10)


def test_expected_purchases_are_continuous_through_a_equal_one() -> None:
    """a = 1 is a removable singularity of the closed form: values at 1 - 1e-10, 1 and 1 + 1e-10
    agree to 1e-9 (the literal formula is off by about 1e-6 there, or infinite at 1)."""
    values = [
        float(clv.bg_nbd_expected_purchases(BgNbdParams(0.8, 40.0, a, 3.0), 90.0, 5, 60.0, 200.0))
        for a in (1 - 1e-10, 1.0, 1 + 1e-10)
    ]
    assert np.all(np.isfinite(values))
    assert values[0] == pytest.approx(values[1], rel=1e-9)
    assert values[2] == pytest.approx(values[1], rel=1e-9)


def test_no_purchase_probability_special_cases() -> None:
    params = BgNbdParams(r=0.6, alpha=30.0, a=0.9, b=3.0)
    # never repeated: alive for sure, so ((alpha+T)/(alpha+T+t))^r
    assert float(clv.bg_nbd_prob_no_purchase(params, 90.0, 0, 0.0, 100.0)) == pytest.approx(
        (130.0 / 220.0) ** 0.6, rel=1e-12
    )
    # no time, no purchase
    assert float(clv.bg_nbd_prob_no_purchase(params, 0.0, 4, 50.0, 100.0)) == 1.0
    # at least the probability of being dead, and falling with the horizon
    alive = float(clv.bg_nbd_prob_alive(params, 4, 20.0, 300.0))
    p0 = clv.bg_nbd_prob_no_purchase(params, np.array([1.0, 30.0, 90.0, 1e6]), 4, 20.0, 300.0)
    assert np.all(p0 >= 1 - alive - 1e-12)
    assert np.all(np.diff(p0) < 0)
    assert p0[-1] == pytest.approx(1 - alive, abs=1e-6)


# ------------------------------------------------------------------------------------------
# Monte Carlo and parameter recovery on simulated customers
# ------------------------------------------------------------------------------------------


def _binned(score: np.ndarray, n_bins: int = 10) -> list[np.ndarray]:
    order = np.argsort(score, kind="stable")
    return np.array_split(order, n_bins)


def test_no_purchase_probability_matches_monte_carlo(simulated: pd.DataFrame) -> None:
    """Customers simulated from the model: within each decile of the predicted probability (true
    parameters), the share without a holdout purchase equals the mean prediction within four
    binomial standard errors. A no-purchase formula that ignored P(alive), or used p in the
    alive customer's survival, is off by far more (see docs/clv.md)."""
    s = simulated
    predicted = clv.bg_nbd_prob_no_purchase(TRUE_BG, 90.0, s["frequency"], s["recency"], s["T"])
    observed = (s["holdout_purchases"] == 0).to_numpy()
    for rows in _binned(predicted):
        mean = predicted[rows].mean()
        se = math.sqrt(mean * (1 - mean) / rows.size)
        assert abs(observed[rows].mean() - mean) < 4 * se + 1e-3
    # a wrong formula would fail the same check: alive customers' survival only (P(alive) = 1)
    wrong = np.exp(-(TRUE_BG.r + s["frequency"]) * np.log1p(90.0 / (TRUE_BG.alpha + s["T"])))
    assert abs(observed.mean() - wrong.mean()) > 10 * math.sqrt(0.25 / len(s))


def test_expected_purchases_and_prob_alive_match_monte_carlo(simulated: pd.DataFrame) -> None:
    s = simulated
    expected = clv.bg_nbd_expected_purchases(TRUE_BG, 90.0, s["frequency"], s["recency"], s["T"])
    actual = s["holdout_purchases"].to_numpy(float)
    for rows in _binned(expected):
        se = actual[rows].std(ddof=1) / math.sqrt(rows.size)
        assert abs(actual[rows].mean() - expected[rows].mean()) < 4 * se + 1e-3
    assert actual.sum() == pytest.approx(expected.sum(), rel=0.02)
    alive = clv.bg_nbd_prob_alive(TRUE_BG, s["frequency"], s["recency"], s["T"])
    truly_alive = s["alive_at_T"].to_numpy(float)
    for rows in _binned(alive):
        mean = alive[rows].mean()
        se = math.sqrt(max(mean * (1 - mean), 1e-4) / rows.size)
        assert abs(truly_alive[rows].mean() - mean) < 4 * se + 1e-3


def test_parameters_are_recovered_from_simulated_customers(simulated: pd.DataFrame) -> None:
    """MLE on 20,000 simulated customers: every log-parameter within four asymptotic standard
    errors (observed information) of the truth, and those errors small enough (< 0.2 on the log
    scale, i.e. about 20%) for the check to mean something."""
    s = simulated.head(20_000)
    collapsed = clv.collapse_summary(s)
    bg = clv.fit_bg_nbd(
        collapsed["frequency"], collapsed["recency"], collapsed["T"], collapsed["weight"]
    )
    assert bg.diagnostics.converged
    for name in clv.BG_NBD_NAMES:
        se = bg.diagnostics.log_std_errors[name]
        assert 0 < se < 0.2, name
        error = math.log(getattr(bg.params, name)) - math.log(getattr(TRUE_BG, name))
        assert abs(error) < 4 * se, name
    repeat = s.loc[s["frequency"] > 0]
    gg = clv.fit_gamma_gamma(repeat["frequency"], repeat["monetary"])
    for name in clv.GAMMA_GAMMA_NAMES:
        se = gg.diagnostics.log_std_errors[name]
        assert 0 < se < 0.2, name
        error = math.log(getattr(gg.params, name)) - math.log(getattr(TRUE_GG, name))
        assert abs(error) < 4 * se, name


# ------------------------------------------------------------------------------------------
# Gamma-Gamma and CLV
# ------------------------------------------------------------------------------------------


def test_expected_order_value_shrinks_towards_the_population_mean() -> None:
    params = GammaGammaParams(p=6.25, q=3.74, v=15.44)
    population = params.p * params.v / (params.q - 1)
    values = clv.gamma_gamma_expected_order_value(
        params, [0, 1, 10, 1000, 3], [np.nan, 100.0, 100.0, 100.0, -5.0]
    )
    assert values[0] == pytest.approx(population)
    assert population < values[1] < values[2] < values[3] < 100.0
    assert values[3] == pytest.approx(100.0, rel=0.01)
    # fully returned repeat days (negative mean) count as zero spend
    assert values[4] == pytest.approx(params.p * params.v / (3 * params.p + params.q - 1))
    with pytest.raises(CustomerValueError, match=r"q = 0\.9"):
        clv.gamma_gamma_expected_order_value(GammaGammaParams(2.0, 0.9, 10.0), [1], [5.0])


def _spend_days(first_day: str, step_days: int, spends: dict[int, list[float]]) -> list[tuple]:
    """Purchase-day rows (customer, moment, spend) ``step_days`` apart from ``first_day``."""
    start = pd.Timestamp(first_day)
    return [
        (customer, start + pd.Timedelta(days=step_days * k + customer % 7), spend)
        for customer, days in spends.items()
        for k, spend in enumerate(days)
    ]


def test_a_spend_fit_without_a_finite_mean_names_the_var_and_the_fix() -> None:
    """30 repeat customers whose spend levels have a Pareto tail of index 0.5 (an infinite mean):
    the Gamma-Gamma fit finds q <= 1. The build's record stops with the var of the fit that
    failed, the customers it saw and the fix, not with the order value's bare q error."""
    rng = np.random.default_rng(0)
    levels = 10.0 * (1.0 + rng.pareto(0.5, 30))
    heavy = _spend_days("2011-01-03", 20, {c: [s, 1.1 * s, 0.9 * s] for c, s in enumerate(levels)})
    # 60 customers with even spend, all after the calibration end: the production fit is sound
    calm = _spend_days("2011-09-12", 10, {c: [100.0, 110.0, 90.0] for c in range(100, 160)})
    columns = ["customer_id", "purchased_at", "spend"]
    for rows, var_name in ((heavy, "rfm_as_of"), (heavy + calm, "clv_calibration_end")):
        days = pd.DataFrame(rows, columns=columns)
        days["spend_known_at_rfm_as_of"] = days["spend_known_at_calibration_end"] = days["spend"]
        with pytest.raises(CustomerValueError) as raised:
            clv.customer_value_record(days, "2011-12-10", "2011-09-09", None, 0.01)
        message = str(raised.value)
        assert f"the 30 customers with repeat spend before var {var_name} = " in message
        assert re.search(r"has q = 0\.\d+ <= 1", message), message
        assert f"--vars '{{{var_name}: YYYY-MM-DD}}'" in message
    # the calm customers alone give a sound fit and a record
    days = pd.DataFrame(
        _spend_days("2011-01-03", 60, {c: [100.0, 110.0 + c, 90.0, 95.0] for c in range(60)}),
        columns=columns,
    )
    days["spend_known_at_rfm_as_of"] = days["spend_known_at_calibration_end"] = days["spend"]
    assert clv.customer_value_record(days, "2011-12-10", "2011-09-09", None, 0.01).num_rows == 1


def test_the_builds_evaluation_is_the_librarys_scored_on_spend_net_of_every_return() -> None:
    """``ml.clv_evaluation`` comes from ``customer_value_record``: the calibration fit sees spend
    as known at the cut-off, the holdout is scored on spend net of every return. On days without
    later returns it equals ``evaluate_customer_value`` (whose leakage test is above); a return
    made after the cut-off changes the scored spend, not the predictions."""
    lines = synthetic_lines(300)
    days = lines.rename(columns={"invoice_at": "purchased_at", "total_price": "spend"})
    days["spend_known_at_rfm_as_of"] = days["spend_known_at_calibration_end"] = days["spend"]
    record = clv.customer_value_record(days, "2011-12-10", "2011-09-01", None, 0.01)
    built = result_frame(record, "evaluation")
    library = clv.evaluate_customer_value(lines, "2011-09-01", 91)
    pd.testing.assert_frame_equal(
        built.drop(columns=["calibration_end", "holdout_end"]),
        library.drop(columns=["calibration_end", "holdout_end"]),
    )
    # a purchase of the calibration window returned in the holdout: its spend as scored drops
    returned = days["purchased_at"] < pd.Timestamp("2011-09-01")
    late = days.assign(spend=days["spend"].where(~returned, days["spend"] / 2))
    later = result_frame(clv.customer_value_record(late, "2011-12-10", "2011-09-01"), "evaluation")
    pd.testing.assert_frame_equal(later, built)
    holdout = days["purchased_at"] >= pd.Timestamp("2011-09-01")
    late.loc[holdout, "spend"] = late.loc[holdout, "spend"] / 2
    halved = result_frame(clv.customer_value_record(late, "2011-12-10", "2011-09-01"), "evaluation")
    spend = (built["target"] == "spend").to_numpy()
    assert (halved.loc[spend, "total_error"] > built.loc[spend, "total_error"]).all()
    pd.testing.assert_frame_equal(halved.loc[~spend], built.loc[~spend])


def test_clv_discounts_the_monthly_expected_purchases() -> None:
    params = BgNbdParams(r=0.6, alpha=30.0, a=0.9, b=3.0)
    x, t_x, age = np.array([0, 3, 12]), np.array([0.0, 40.0, 200.0]), np.array([30.0, 90.0, 210.0])
    value = np.array([50.0, 80.0, 120.0])
    # no discount: the months telescope to the expected purchases of the whole year
    undiscounted = clv.customer_lifetime_value(
        params, value, x, t_x, age, months=12, month_length=365 / 12, monthly_discount_rate=0.0
    )
    year = clv.bg_nbd_expected_purchases(params, 365.0, x, t_x, age) * value
    np.testing.assert_allclose(undiscounted, year, rtol=1e-12)
    # one month: the month's purchases discounted once
    one = clv.customer_lifetime_value(
        params, value, x, t_x, age, months=1, month_length=30.0, monthly_discount_rate=0.05
    )
    month = clv.bg_nbd_expected_purchases(params, 30.0, x, t_x, age) * value
    np.testing.assert_allclose(one, month / 1.05, rtol=1e-12)
    discounted = clv.customer_lifetime_value(params, value, x, t_x, age, monthly_discount_rate=0.02)
    assert np.all(discounted < undiscounted)
    assert np.all(discounted > undiscounted / 1.02**12)


# ------------------------------------------------------------------------------------------
# summary, entry points, settings and errors
# ------------------------------------------------------------------------------------------


def test_summary_counts_purchase_days_before_the_cut_off() -> None:
    lines = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 1, 1, 2, 2],
            "purchased_at": pd.to_datetime(
                [
                    "2011-03-01 09:00",  # day 1: two orders, three lines
                    "2011-03-01 09:00",
                    "2011-03-01 17:30",
                    "2011-03-05 12:00",  # day 5
                    "2011-03-10 23:59",  # day 10
                    "2011-03-20 00:00",  # exactly at the cut-off: excluded
                    "2011-03-15 10:00",  # customer 2: one day only
                    "2011-04-01 10:00",  # after the cut-off: excluded
                ]
            ),
            "amount": [10.0, 5.0, 20.0, 40.0, 60.0, 1000.0, 7.0, 500.0],
        }
    )
    summary = clv.repeat_purchase_summary(lines, "2011-03-20").set_index("customer_id")
    assert list(summary.columns) == list(clv.SUMMARY_COLUMNS[1:])
    one, two = summary.loc[1], summary.loc[2]
    assert (one["frequency"], one["recency"], one["T"]) == (2, 9.0, 19.0)
    assert one["monetary"] == pytest.approx(50.0)  # (40 + 60) / 2, the first day excluded
    assert one["total_spend"] == pytest.approx(135.0)
    assert one["first_purchase_at"] == pd.Timestamp("2011-03-01 09:00")
    assert one["last_purchase_at"] == pd.Timestamp("2011-03-10 23:59")
    assert (two["frequency"], two["recency"], two["T"]) == (0, 0.0, 5.0)
    assert math.isnan(two["monetary"])
    assert summary["frequency"].dtype == "int64"


def test_summary_reads_a_naive_cut_off_in_the_data_clock() -> None:
    lines = pd.DataFrame(
        {
            "customer_id": [7, 7],
            "purchased_at": pd.to_datetime(["2011-03-26 23:30", "2011-03-28 00:30"]).tz_localize(
                "Europe/London"
            ),
            "amount": [1.0, 2.0],
        }
    )
    summary = clv.repeat_purchase_summary(lines, "2011-03-29")
    # the clocks change on 2011-03-27 (a 23-hour day); days are counted in the local calendar
    assert summary.loc[0, "frequency"] == 1
    assert summary.loc[0, "recency"] == pytest.approx(47 / 24)
    assert summary.loc[0, "T"] == pytest.approx(71 / 24)
    with pytest.raises(CustomerValueError, match="has no time zone"):
        clv.repeat_purchase_summary(
            lines.assign(purchased_at=lines["purchased_at"].dt.tz_localize(None)),
            pd.Timestamp("2011-03-29", tz="UTC"),
        )


def test_fit_customer_value_values_every_customer() -> None:
    lines = synthetic_lines()
    result = clv.fit_customer_value(lines, "2011-12-01")
    frame = result.customer_value
    assert list(frame.columns) == [
        "customer_id",
        "expected_purchases_90d",
        "prob_no_purchase_90d",
        "expected_order_value",
        "clv_12m",
        "rfm_as_of",
    ]
    before = lines.loc[lines["invoice_at"] < "2011-12-01"]
    assert sorted(frame["customer_id"]) == sorted(before["customer_id"].unique())
    assert frame["customer_id"].is_unique
    assert (frame["rfm_as_of"] == pd.Timestamp("2011-12-01")).all()
    assert frame["prob_no_purchase_90d"].between(0, 1).all()
    assert (frame["expected_purchases_90d"] > 0).all()
    assert (frame["expected_order_value"] > 0).all()
    assert (frame["clv_12m"] > 0).all()
    model = result.model.set_index("model")
    assert list(result.model.columns) == list(clv.MODEL_COLUMNS)
    assert sorted(json.loads(model.loc["bg_nbd", "parameters"])) == ["a", "alpha", "b", "r"]
    assert sorted(json.loads(model.loc["gamma_gamma", "parameters"])) == ["p", "q", "v"]
    assert model.loc["bg_nbd", "n_customers"] == len(frame)
    assert model.loc["gamma_gamma", "n_customers"] == int(
        ((result.summary["frequency"] > 0) & (result.summary["monetary"] > 0)).sum()
    )
    assert (model["data_window_start"] == before["invoice_at"].min()).all()
    assert (model["data_window_end"] == pd.Timestamp("2011-12-01")).all()
    assert json.loads(model.loc["bg_nbd", "parameters"])["r"] == result.bg_nbd.params.r


def _purchase_days(lines: pd.DataFrame) -> pd.DataFrame:
    """synthetic_lines with the columns of int_customer_value__purchase_days."""
    return lines.rename(
        columns={"invoice_at": "purchased_at", "total_price": "spend_known_at_rfm_as_of"}
    )


def test_the_scorer_gives_the_fits_values_whatever_the_grouping_of_customers() -> None:
    days = _purchase_days(synthetic_lines(300))
    settings = {"time_column": "purchased_at", "amount_column": "spend_known_at_rfm_as_of"}
    settings = {**settings, "monthly_discount_rate": 0.02}
    fitted = clv.fit_customer_value(days, "2011-12-01", settings)
    models = pd.DataFrame(
        clv._fitted_models("production", clv.fit_value_models(days, "2011-12-01", settings))
    )
    scorer = clv.customer_value_scorer(models, "2011-12-01", None, "0.02")
    whole = scorer(days)
    assert list(whole.columns) == list(clv.customer_value_schema())
    assert str(whole["customer_id"].dtype) == "int32"
    expected = fitted.customer_value.assign(customer_id=lambda f: f["customer_id"].astype("int32"))
    pd.testing.assert_frame_equal(whole, expected.reset_index(drop=True))
    # what map_groups does on Spark: customers scored in groups, each customer's days together
    groups = days["customer_id"] % 7
    parts = [scorer(days.loc[groups == g]) for g in range(7)]
    grouped = pd.concat(parts).sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(grouped, whole)


def test_the_scorer_needs_exactly_one_production_model_of_each_kind() -> None:
    days = _purchase_days(synthetic_lines(200))
    settings = {"time_column": "purchased_at", "amount_column": "spend_known_at_rfm_as_of"}
    fitted = clv.fit_value_models(days, "2011-12-01", settings)
    models = pd.DataFrame(clv._fitted_models("production", fitted))
    with pytest.raises(CustomerValueError, match=r"one production gamma_gamma model.*found 0"):
        clv.customer_value_scorer(models.iloc[:1], "2011-12-01")
    twice = pd.concat([models, models.iloc[:1]])
    with pytest.raises(CustomerValueError, match=r"one production bg_nbd model.*found 2"):
        clv.customer_value_scorer(twice, "2011-12-01")
    calibration = models.assign(purpose="calibration")
    with pytest.raises(CustomerValueError, match="found 0"):
        clv.customer_value_scorer(calibration, "2011-12-01")
    with pytest.raises(CustomerValueError, match="must be finite numbers > 0"):
        clv.customer_value_scorer(models.assign(r=-1.0), "2011-12-01")


def test_settings_name_the_columns_and_reject_bad_values() -> None:
    lines = synthetic_lines(200)
    result = clv.fit_customer_value(lines, "2011-12-01", {"horizon_days": 30, "clv_months": 6})
    assert "expected_purchases_30d" in result.customer_value.columns
    assert "clv_6m" in result.customer_value.columns
    assert clv.customer_value_settings(None) == CustomerValueSettings()
    with pytest.raises(CustomerValueError, match=r"unknown key 'horizon'"):
        clv.customer_value_settings({"horizon": 90})
    with pytest.raises(CustomerValueError, match=r"'monthly_discount_rate' = -0\.1"):
        clv.customer_value_settings({"monthly_discount_rate": -0.1})
    with pytest.raises(CustomerValueError, match=r"'horizon_days' = 90\.5: must be a whole number"):
        clv.customer_value_settings({"horizon_days": 90.5})
    with pytest.raises(CustomerValueError, match="'month_days'"):
        clv.customer_value_settings({"month_days": 0})


def test_bad_inputs_get_a_message_not_a_traceback() -> None:
    lines = synthetic_lines(50)
    with pytest.raises(CustomerValueError, match=r"lacks column\(s\) \['total_price'\]"):
        clv.fit_customer_value(lines.drop(columns="total_price"), "2011-12-01")
    with pytest.raises(CustomerValueError, match="as_of must be a date"):
        clv.fit_customer_value(lines, "not a date")
    broken = lines.copy()
    broken.loc[3, "total_price"] = np.nan
    with pytest.raises(CustomerValueError, match="'total_price' has 1 missing"):
        clv.fit_customer_value(broken, "2011-12-01")
    with pytest.raises(CustomerValueError, match="no purchases before the cut-off"):
        clv.fit_customer_value(lines, "2000-01-01")
    one_day = lines.assign(invoice_at=pd.Timestamp("2011-05-05 10:00"))
    with pytest.raises(CustomerValueError, match="repeat purchase day"):
        clv.fit_customer_value(one_day, "2011-12-01")
    with pytest.raises(CustomerValueError, match="holdout_days"):
        clv.evaluate_customer_value(lines, "2011-09-01", 0)
    with pytest.raises(CustomerValueError, match="recency <= T"):
        clv.fit_bg_nbd([1, 2], [5.0, 50.0], [10.0, 20.0])
    with pytest.raises(CustomerValueError, match="must be finite numbers > 0"):
        BgNbdParams(r=0.5, alpha=10.0, a=0.0, b=1.0)
    # weighted distinct summaries: 60 identical customers are one row, and said as 60
    with pytest.raises(CustomerValueError, match="got 60 who all have the same repeat purchases"):
        clv.fit_gamma_gamma([2], [100.0], [60])
    with pytest.raises(CustomerValueError, match=r"spend summaries, got 1$"):
        clv.fit_gamma_gamma([2], [100.0])


# ------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------


def test_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    score = rng.integers(0, 5, 500).astype(float)  # many ties
    label = rng.random(500) < 0.2 + 0.1 * score
    assert clv.auc(score, label) == pytest.approx(roc_auc_score(label, score), abs=1e-12)
    assert math.isnan(clv.auc(score, np.zeros(500, dtype=bool)))


def test_top_share_splits_tied_predictions_at_the_cut() -> None:
    predicted = [9.0, 5.0, 5.0, 5.0] + [0.0] * 16  # n = 20, the top decile is 2 customers
    actual = [10.0, 6.0, 0.0, 3.0] + [1.0] * 16  # total 35
    # customer 1 fully, then one of the three tied at 5: a third of their 9 on average
    assert clv.top_share(predicted, actual) == pytest.approx((10.0 + 9.0 / 3) / 35.0)
    assert clv.top_share([3.0, 2.0, 1.0], [0.0, 0.0, 4.0], share=1 / 3) == 0.0
    assert math.isnan(clv.top_share([1.0, 2.0], [0.0, 0.0]))


def test_evaluation_table_scores_model_and_naive_rate() -> None:
    summary = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "frequency": [2, 0, 1],
            "T": [100.0, 50.0, 20.0],
            "total_spend": [300.0, 50.0, 80.0],
        }
    )
    actuals = pd.DataFrame({"customer_id": [1, 3], "purchases": [1, 2], "spend": [100.0, 90.0]})
    predictions = pd.DataFrame(
        {
            "customer_id": [3, 2, 1],  # any order
            "expected_purchases": [1.0, 0.2, 0.5],
            "expected_order_value": [40.0, 50.0, 100.0],
            "prob_no_purchase": [0.3, 0.45, 0.6],
        }
    )
    end = pd.Timestamp("2011-09-09")
    table = clv.evaluation_table(summary, actuals, predictions, 10, end)
    assert list(table.columns) == list(clv.EVALUATION_COLUMNS)
    rows = table.set_index(["model", "target"])
    model = rows.loc[("bg_nbd_gamma_gamma", "purchases")]
    # errors 0.5 - 1, 0.2 - 0, 1 - 2
    assert model["mae"] == pytest.approx(1.7 / 3)
    assert model["rmse"] == pytest.approx(math.sqrt((0.25 + 0.04 + 1.0) / 3))
    assert model["total_error"] == pytest.approx(-1.3)
    assert model["auc_no_purchase"] == pytest.approx(0.5)  # 0.45 sits between 0.6 and 0.3
    spend = rows.loc[("bg_nbd_gamma_gamma", "spend")]
    assert spend["total_error"] == pytest.approx((50 + 10 + 40) - 190.0)
    assert math.isnan(spend["auc_no_purchase"])
    # naive: 2/100*10 = 0.2, 0, 1/20*10 = 0.5 days; spend x mean day spend 300/3 and 80/2
    naive = rows.loc[("naive_rate", "purchases")]
    assert naive["total_error"] == pytest.approx(0.7 - 3.0)
    assert naive["auc_no_purchase"] == pytest.approx(1.0)  # exp(-0) for the one without repeats
    assert rows.loc[("naive_rate", "spend"), "total_error"] == pytest.approx(40.0 - 190.0)
    assert (table["n_customers"] == 3).all()
    assert (table["holdout_end"] == pd.Timestamp("2011-09-19")).all()


def test_evaluate_customer_value_layout() -> None:
    lines = synthetic_lines()
    table = clv.evaluate_customer_value(lines, "2011-09-01", 91)
    assert list(table[["model", "target"]].itertuples(index=False, name=None)) == [
        ("bg_nbd_gamma_gamma", "purchases"),
        ("bg_nbd_gamma_gamma", "spend"),
        ("naive_rate", "purchases"),
        ("naive_rate", "spend"),
    ]
    calibration_customers = lines.loc[lines["invoice_at"] < "2011-09-01", "customer_id"].nunique()
    assert (table["n_customers"] == calibration_customers).all()
    assert (table["calibration_end"] == pd.Timestamp("2011-09-01")).all()
    assert (table["holdout_end"] == pd.Timestamp("2011-12-01")).all()
    assert table.loc[table["target"] == "purchases", "auc_no_purchase"].between(0, 1).all()
    assert table.loc[table["target"] == "spend", "auc_no_purchase"].isna().all()
    assert table[["mae", "rmse", "pearson", "top_decile_share"]].notna().all().all()


def test_holdout_lines_never_reach_the_calibration_fit() -> None:
    """Leakage: the fit at calibration_end must see only lines strictly before it.

    (1) Fitting on all lines and on the calibration lines alone gives identical models and
    predictions. (2) The leaky variant, a fit that also sees the holdout lines (a cut-off at the
    holdout end), gives different parameters, so if the filter in repeat_purchase_summary were
    removed, (1) would compare two different fits and fail. (3) At the level of the evaluation,
    changing only holdout lines changes the actuals but not the predictions."""
    lines = synthetic_lines()
    calibration_end = pd.Timestamp("2011-09-01")
    holdout_end = calibration_end + pd.Timedelta(days=91)
    calibration_only = lines.loc[lines["invoice_at"] < calibration_end]
    assert len(calibration_only) < len(lines)

    with_future = clv.fit_customer_value(lines, calibration_end)
    without_future = clv.fit_customer_value(calibration_only, calibration_end)
    pd.testing.assert_frame_equal(with_future.model, without_future.model)
    pd.testing.assert_frame_equal(with_future.customer_value, without_future.customer_value)

    leaky = clv.fit_customer_value(lines.loc[lines["invoice_at"] < holdout_end], holdout_end)
    assert leaky.bg_nbd.params.r != pytest.approx(with_future.bg_nbd.params.r, rel=1e-3)
    assert leaky.gamma_gamma.params.p != pytest.approx(with_future.gamma_gamma.params.p, rel=1e-3)

    def predicted_and_actual_totals(source: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        table = clv.evaluate_customer_value(source, calibration_end, 91)
        actual = clv.holdout_actuals(
            source,
            calibration_end,
            91,
            customer_column="customer_id",
            time_column="invoice_at",
            amount_column="total_price",
        )
        known = actual.loc[actual["customer_id"].isin(calibration_only["customer_id"])]
        totals = table["target"].map(
            {"purchases": known["purchases"].sum(), "spend": known["spend"].sum()}
        )
        # total_error = predicted total - actual total
        return table["total_error"] + totals, totals

    holdout = lines.loc[lines["invoice_at"] >= calibration_end]
    busier = pd.concat(
        [lines, holdout.assign(invoice_at=holdout["invoice_at"] + pd.Timedelta(hours=30))]
    )
    predicted, actual = predicted_and_actual_totals(lines)
    predicted_busier, actual_busier = predicted_and_actual_totals(busier)
    assert (actual_busier > actual).all()
    np.testing.assert_allclose(predicted_busier, predicted, rtol=1e-12)

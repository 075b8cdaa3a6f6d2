"""Customers simulated from BG/NBD and Gamma-Gamma with known parameters: the parameter-recovery
and backtest tests fit `retail_segments.ml.value` on them and compare with the truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from retail_segments.ml.value import BgNbdParams, GammaGammaParams


def simulate_customers(
    bg_nbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    T: Any,
    *,
    horizon: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate customers from BG/NBD and Gamma-Gamma in continuous time.

    Each customer makes a first purchase at time 0, then buys at the event times of a Poisson
    process with rate ``lambda ~ Gamma(r, alpha)`` and after each repeat purchase drops out with
    probability ``p ~ Beta(a, b)``. Repeat purchase values are ``Gamma(p, nu)``,
    ``nu ~ Gamma(q, v)`` per customer.

    Parameters
    ----------
    bg_nbd, gamma_gamma : true parameters.
    T : observation length per customer (array; its size is the number of customers).
    horizon : length of the holdout period after ``T``.
    seed : seed of ``numpy.random.default_rng``.

    Returns
    -------
    One row per customer: ``frequency``, ``recency``, ``T``, ``monetary`` (NaN without repeat),
    ``holdout_purchases``, ``holdout_spend``, ``alive_at_T``.
    """
    rng = np.random.default_rng(seed)
    age = np.asarray(T, dtype="float64").ravel()
    n = age.size
    rate = rng.gamma(bg_nbd.r, 1.0 / bg_nbd.alpha, n)
    dropout = rng.beta(bg_nbd.a, bg_nbd.b, n)
    nu = rng.gamma(gamma_gamma.q, 1.0 / gamma_gamma.v, n)
    clock = np.zeros(n)
    x = np.zeros(n, dtype="int64")
    t_x = np.zeros(n)
    held = np.zeros(n, dtype="int64")
    alive_at_t = np.ones(n, dtype=bool)
    active = np.flatnonzero(rate > 0)
    while active.size:
        clock[active] += rng.exponential(1.0 / rate[active])
        in_calibration = clock[active] <= age[active]
        in_holdout = ~in_calibration & (clock[active] <= age[active] + horizon)
        x[active[in_calibration]] += 1
        t_x[active[in_calibration]] = clock[active[in_calibration]]
        held[active[in_holdout]] += 1
        drops = rng.random(active.size) < dropout[active]
        alive_at_t[active[in_calibration & drops]] = False
        active = active[(in_calibration | in_holdout) & ~drops]
    with np.errstate(invalid="ignore", divide="ignore"):
        spend = rng.gamma(np.maximum(gamma_gamma.p * x, 1e-300), 1.0 / nu)
        monetary = np.where(x > 0, spend / x, np.nan)
        holdout_spend = np.where(
            held > 0, rng.gamma(np.maximum(gamma_gamma.p * held, 1e-300), 1.0 / nu), 0.0
        )
    return pd.DataFrame(
        {
            "frequency": x,
            "recency": t_x,
            "T": age,
            "monetary": monetary,
            "holdout_purchases": held,
            "holdout_spend": holdout_spend,
            "alive_at_T": alive_at_t,
        }
    )

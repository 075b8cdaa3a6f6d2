"""`dbt build` on the real UCI file (skipped when it is absent), checked against the figures
published with the file and against the independent pandas computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dbt_helpers import Workspace

from retail_segments_dev import reference

pytestmark = [pytest.mark.dbt, pytest.mark.real_data]


@pytest.fixture(scope="module")
def expected_clean(real_raw: Path) -> pd.DataFrame:
    return reference.clean(reference.read_raw(real_raw))


def test_raw_profile_matches_the_published_figures(real_build: Workspace) -> None:
    profile = real_build.frame("select * from marts.eda_raw_profile").iloc[0]
    assert profile.n_rows == 541_909
    assert profile.n_null_customer_id == 135_080
    assert profile.n_customers == 4_372
    assert profile.n_invoices == 25_900
    assert profile.n_cancellation_lines == 9_288
    assert profile.n_countries == 38
    assert profile.n_duplicate_lines == 5_268
    assert str(profile.first_invoice_at.date()) == "2010-12-01"
    assert str(profile.last_invoice_at.date()) == "2011-12-09"


def test_clean_lines_equal_the_reference(
    real_build: Workspace, expected_clean: pd.DataFrame
) -> None:
    actual = real_build.frame(
        "select source_row_number, quantity_canceled, total_price"
        " from marts.fct_sales_lines order by source_row_number"
    )
    expected = expected_clean.sort_values("source_row_number")
    assert actual.source_row_number.tolist() == expected.source_row_number.tolist()
    assert actual.quantity_canceled.tolist() == expected.quantity_canceled.astype(int).tolist()
    np.testing.assert_allclose(actual.total_price, expected.total_price, rtol=1e-9, atol=1e-9)


def test_rfm_equals_the_reference(real_build: Workspace, expected_clean: pd.DataFrame) -> None:
    actual = real_build.frame("select * from marts.customer_rfm order by customer_id")
    expected = reference.rfm(expected_clean).sort_values("customer_id").reset_index(drop=True)
    assert actual.customer_id.tolist() == expected.customer_id.astype(int).tolist()
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
        assert actual[column].tolist() == expected[column].astype(int).tolist(), column
    np.testing.assert_allclose(actual.monetary, expected.monetary, rtol=1e-9, atol=1e-6)
    assert actual.is_outlier.tolist() == expected.is_outlier.astype(bool).tolist()


def test_cancelled_basket_share_is_the_studys(real_build: Workspace) -> None:
    share = real_build.query("select cancelled_basket_share from marts.eda_cancelled_baskets")[0][0]
    assert share == pytest.approx(0.1647, abs=5e-4)

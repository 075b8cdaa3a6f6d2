"""Issue 4 inside `dbt build` on the synthetic file: product categories in dim_products, customer
interests for everyone, the new-customer evaluation checked against scikit-learn, the leakage tests
shown to fail when a fit has seen lines at or after the cutoff, and lines that arrive later scored
by the same fits on a rebuild."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
import zstandard
from dbt_helpers import PROJECT_ROOT, Workspace, assert_built
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from retail_segments.ml.products import categorize_products
from retail_segments.ops.settings import check_model_meta

pytestmark = pytest.mark.dbt

CUTOFF = pd.Timestamp("2011-10-01")
LEAKAGE_TESTS = [
    "assert_interest_models_fit_before_cutoff",
    "assert_interest_training_customers_first_bought_before_cutoff",
    "assert_product_fit_only_on_products_sold_before_cutoff",
]
# Issue 4's tables and everything they need; --indirect-selection cautious keeps the tests of
# other issues' models out (the unit tests of the foundation are not needed here).
SELECTION = [
    "+dim_products",
    "+dim_customers",
    "+product_category_selection",
    "+customer_interests",
    "+customer_interest_selection",
    "+customer_interest_profiles",
    "+customer_interest_profile_shares",
    "+ml_customer_interest_model_fits",
    "+ml_customer_interest_training_assignments",
    "+new_customer_evaluation",
]
NEW_CUSTOMER = 99001
NEW_STOCK_CODE = "99990"


def test_every_product_in_dim_products_has_one_category(synthetic_build: Workspace) -> None:
    products = synthetic_build.frame(
        "select p.stock_code, p.product_category, p.product_category_label,"
        " a.product_category as assigned, c.product_category_label as label"
        " from marts.dim_products as p"
        " left join ml.product_category_assignments as a using (stock_code)"
        " left join ml.product_categories as c on c.product_category = p.product_category"
    )
    assert len(products) > 0
    assert products.product_category.notna().all()
    assert (products.product_category == products.assigned).all()
    assert (products.product_category_label == products.label).all()
    selected = synthetic_build.query(
        "select n_clusters from ml.product_category_selection where is_selected"
    )
    assert products.product_category.nunique() == selected[0][0]


def test_every_customer_has_one_interest_and_new_customers_are_scored(
    synthetic_build: Workspace,
) -> None:
    interests = synthetic_build.frame(
        "select d.customer_id, d.first_purchase_at, i.interest_name, i.assignment_method"
        " from marts.dim_customers as d left join ml.customer_interests as i using (customer_id)"
    )
    assert interests.interest_name.notna().all()
    new = interests.first_purchase_at >= CUTOFF
    assert new.any() and (~new).any()
    assert (interests.loc[new, "assignment_method"] == "scored").all()
    assert (interests.loc[~new, "assignment_method"] == "clustered").all()
    predicted = synthetic_build.frame(
        "select distinct customer_id from ml.new_customer_predictions where orders_seen = 1"
    )
    assert sorted(predicted.customer_id) == sorted(interests.loc[new, "customer_id"])


def test_evaluation_equals_scikit_learn_on_the_predictions(synthetic_build: Workspace) -> None:
    predictions = synthetic_build.frame("select * from ml.new_customer_predictions")
    evaluation = synthetic_build.frame(
        "select * from ml.new_customer_evaluation order by orders_seen"
    ).set_index("orders_seen")
    assert sorted(predictions.orders_seen.unique()) == evaluation.index.tolist()
    for orders_seen, group in predictions.groupby("orders_seen"):
        row = evaluation.loc[orders_seen]
        truth = group.true_interest_category
        assert row.n_customers == len(group)
        for column, predicted in [
            ("", group.predicted_interest_category),
            ("baseline_", group.baseline_interest_category),
            ("nearest_cluster_", group.nearest_interest_category),
        ]:
            assert row[f"{column}accuracy"] == pytest.approx(accuracy_score(truth, predicted))
            assert row[f"{column}balanced_accuracy"] == pytest.approx(
                balanced_accuracy_score(truth, predicted)
            )


def test_the_baseline_is_the_largest_fitted_interest(synthetic_build: Workspace) -> None:
    largest = synthetic_build.query(
        "select interest_category from ml.customer_interest_profiles"
        " order by n_customers_fit desc, interest_category limit 1"
    )[0][0]
    baselines = synthetic_build.query(
        "select distinct baseline_interest_category from ml.new_customer_predictions"
    )
    assert baselines == [(largest,)]


def test_profile_focus_matches_the_profile_shares(synthetic_build: Workspace) -> None:
    profiles = synthetic_build.frame(
        "select interest_category, focus_product_category, focus_lift"
        " from ml.customer_interest_profiles order by interest_category"
    )
    shares = synthetic_build.frame("select * from ml.customer_interest_profile_shares")
    top = shares.sort_values(["lift", "product_category"], ascending=[False, True]).groupby(
        "interest_category"
    )
    best = top.first().loc[profiles.interest_category]
    assert best.index.tolist() == profiles.interest_category.tolist()
    assert best.lift.to_numpy() == pytest.approx(profiles.focus_lift.to_numpy())


def test_an_interest_strategy_leads_with_the_focus_only_where_there_is_one(
    synthetic_build: Workspace,
) -> None:
    """segment_summary's interest strategy names the focus range when the category was named
    after it (lift at least the meta block's ``focus_lift``), and otherwise says no range stands
    out: a 'broad mix' is not told to lead with its strongest lean."""
    settings = check_model_meta(PROJECT_ROOT).settings["ml_customer_interest_fit"]
    focus_lift = settings["customer_interests"].focus_lift
    rows = synthetic_build.frame(
        "select summary.segment_name, summary.strategy, profiles.focus_lift,"
        " profiles.focus_product_category_label as label"
        " from marts.segment_summary as summary"
        " inner join ml.customer_interest_profiles as profiles"
        " on summary.segment_name = profiles.interest_name"
        " where summary.scheme = 'interest_category'"
    )
    assert (
        len(rows)
        == synthetic_build.query("select count(*) from ml.customer_interest_profiles")[0][0]
    )
    for row in rows.itertuples():
        focused = row.focus_lift >= focus_lift
        assert focused == (not row.segment_name.startswith("broad mix")), row
        lead = (
            f"Lead with their focus range ({row.label}). "
            if focused
            else f"No one range stands out (the strongest lean is {row.label}): lead with"
            " bestsellers across ranges. "
        )
        assert row.strategy.startswith(lead), row


def test_each_fit_model_is_one_keyed_row_whose_keys_match_its_results(
    synthetic_build: Workspace,
) -> None:
    products = synthetic_build.query(
        "select fit_name, cutoff_at, n_training_products, n_categories"
        " from ml.ml_product_categories_fit"
    )
    assert products == [
        (
            "product_categories",
            CUTOFF.to_pydatetime(),
            synthetic_build.query(
                "select count(*) from ml.product_category_assignments"
                " where assignment_method = 'fit'"
            )[0][0],
            synthetic_build.query("select count(*) from ml.product_categories")[0][0],
        )
    ]
    interests = synthetic_build.query(
        "select fit_name, cutoff_at, n_training_customers, n_fit_sample, n_interest_categories"
        " from ml.ml_customer_interest_fit"
    )
    assert interests == [
        (
            "customer_interests",
            CUTOFF.to_pydatetime(),
            *synthetic_build.query(
                "select count(*), count(*) filter (where is_fit_sample)"
                " from ml.ml_customer_interest_training_assignments"
            )[0],
            synthetic_build.query(
                "select n_clusters from ml.customer_interest_selection where is_selected"
            )[0][0],
        )
    ]
    assert synthetic_build.query(
        "select count(*) from ml.ml_customer_interest_training_assignments"
        " where customer_id in (select customer_id from ml.customer_interests"
        " where is_new_customer)"
    ) == [(0,)]


def test_the_grouped_lines_count_every_sales_line_once_on_its_side_of_the_cutoff(
    synthetic_build: Workspace,
) -> None:
    cutoff = f"timestamp '{CUTOFF}'"
    grouped = synthetic_build.query(
        "select is_before_cutoff, sum(n_lines), min(first_invoice_at), max(last_invoice_at)"
        " from intermediate.int_product_lines__grouped group by all order by all"
    )
    lines = synthetic_build.query(
        f"select invoice_at < {cutoff}, count(*), min(invoice_at), max(invoice_at)"
        " from marts.fct_sales_lines group by all order by all"
    )
    assert grouped == lines
    assert [row[0] for row in grouped] == [False, True]


def test_the_product_fit_on_the_grouped_lines_is_the_fit_on_the_sales_lines(
    synthetic_build: Workspace,
) -> None:
    lines = synthetic_build.frame(
        "select stock_code, description, unit_price, invoice_at from marts.fct_sales_lines"
    )
    expected = categorize_products(lines, CUTOFF)
    assignments = synthetic_build.frame(
        "select * exclude (product_category_label) from ml.product_category_assignments"
        " order by stock_code"
    )
    pd.testing.assert_frame_equal(assignments, expected.assignments, check_dtype=False)
    selection = synthetic_build.frame(
        "select * from ml.product_category_selection order by n_clusters"
    )
    pd.testing.assert_frame_equal(selection, expected.selection, check_dtype=False)


def _raw_line(
    invoice_no: str, product: pd.Series, quantity: int, at: pd.Timestamp, customer: int
) -> list[str]:
    date = f"{at.month}/{at.day}/{at.year} {at.hour}:{at.minute:02d}"
    price = f"{product.median_unit_price:.2f}"
    return [invoice_no, product.stock_code, product.description, str(quantity), date, price,
            str(customer), "United Kingdom"]  # fmt: skip


def _append_lines(raw: Path, rows: list[list[str]], out: Path) -> Path:
    """Copy the zstd raw file to ``out`` with ``rows`` appended as CSV lines (the old lines stay
    byte for byte, so their source_row_number does not change)."""
    text = zstandard.ZstdDecompressor().stream_reader(raw.open("rb")).read()
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    body = text if text.endswith(b"\n") else text + b"\n"
    out.write_bytes(zstandard.ZstdCompressor().compress(body + buffer.getvalue().encode("latin-1")))
    return out


@pytest.fixture(scope="module")
def incoming(
    tmp_path_factory: pytest.TempPathFactory, synthetic_raw: Path, synthetic_build: Workspace
) -> tuple[Workspace, Path, pd.DataFrame, str]:
    """The synthetic file plus, after the cutoff, a new customer's two orders (one with a stock
    code never sold before that carries a fitted product's description), rebuilt with issue 4's
    models and tests. Returns the workspace, the raw file, the two products and dbt's output."""
    products = synthetic_build.frame(
        "select stock_code, description, median_unit_price from marts.dim_products"
        " order by n_lines desc, stock_code limit 2"
    )
    known = synthetic_build.query(
        f"select count(*) from marts.dim_products where stock_code = '{NEW_STOCK_CODE}'"
        f" union all select count(*) from marts.dim_customers where customer_id = {NEW_CUSTOMER}"
    )
    assert known == [(0,), (0,)]
    new_product = products.iloc[0].copy()
    new_product["stock_code"] = NEW_STOCK_CODE
    first, second = pd.Timestamp("2011-11-15 10:00"), pd.Timestamp("2011-11-29 11:30")
    rows = [
        _raw_line("599901", products.iloc[0], 6, first, NEW_CUSTOMER),
        _raw_line("599901", new_product, 3, first, NEW_CUSTOMER),
        _raw_line("599902", products.iloc[1], 12, second, NEW_CUSTOMER),
    ]
    root = tmp_path_factory.mktemp("interests_incoming")
    raw = _append_lines(synthetic_raw, rows, root / "incoming.csv.zst")
    workspace = Workspace(root)
    build = workspace.build(
        raw,
        "--select",
        *SELECTION,
        "--indirect-selection",
        "cautious",
        "--exclude",
        "test_type:unit",
    )
    assert_built(build)
    return workspace, raw, products, build.stdout


def _frame(workspace: Workspace, sql: str) -> pd.DataFrame:
    return workspace.frame(sql).reset_index(drop=True)


@pytest.mark.parametrize(
    ("table", "order_by"),
    [
        ("ml.product_category_selection", "n_clusters"),
        ("ml.customer_interest_selection", "n_clusters"),
        ("ml.ml_customer_interest_model_fits", "model_name"),
        ("ml.customer_interest_profile_shares", "interest_category, product_category"),
    ],
)
def test_later_lines_do_not_change_the_fits(
    synthetic_build: Workspace, incoming, table: str, order_by: str
) -> None:
    workspace, _, _, _ = incoming
    before = _frame(synthetic_build, f"select * from {table} order by {order_by}")
    after = _frame(workspace, f"select * from {table} order by {order_by}")
    pd.testing.assert_frame_equal(after, before, check_exact=False, rtol=1e-9)


def test_later_lines_leave_every_earlier_assignment_as_it_was(
    synthetic_build: Workspace, incoming
) -> None:
    workspace, _, _, _ = incoming
    for sql in [
        "select * exclude (n_customers_now) from ml.customer_interest_profiles"
        " order by interest_category",
        "select * from ml.product_category_assignments"
        f" where stock_code <> '{NEW_STOCK_CODE}' order by stock_code",
        "select * from ml.customer_interests"
        f" where customer_id <> {NEW_CUSTOMER} order by customer_id",
        "select * from ml.new_customer_predictions"
        f" where customer_id <> {NEW_CUSTOMER} order by customer_id, orders_seen",
        "select * from ml.ml_customer_interest_training_assignments order by customer_id",
    ]:
        pd.testing.assert_frame_equal(
            _frame(workspace, sql), _frame(synthetic_build, sql), check_exact=False, rtol=1e-9
        )


def test_a_later_customer_and_product_are_scored(incoming) -> None:
    workspace, _, products, _ = incoming
    interest = workspace.query(
        "select assignment_method, n_orders from ml.customer_interests"
        f" where customer_id = {NEW_CUSTOMER}"
    )
    assert interest == [("scored", 2)]
    predicted = workspace.query(
        "select orders_seen from ml.new_customer_predictions"
        f" where customer_id = {NEW_CUSTOMER} order by orders_seen"
    )
    assert predicted == [(1,), (2,)]
    categories = dict(
        workspace.query(
            "select stock_code, product_category from marts.dim_products"
            f" where stock_code in ('{NEW_STOCK_CODE}', '{products.stock_code[0]}')"
        )
    )
    assert categories[NEW_STOCK_CODE] == categories[products.stock_code[0]]
    method = workspace.query(
        "select assignment_method from ml.product_category_assignments"
        f" where stock_code = '{NEW_STOCK_CODE}'"
    )
    assert method == [("nearest_category",)]


def test_leakage_tests_fail_when_the_fits_saw_lines_after_the_cutoff(incoming) -> None:
    # The warehouse was fitted with the cutoff 2011-10-01. Tested against an earlier cutoff (the
    # first sale of the latest product in the fit), its fits have seen lines at or after that
    # cutoff: exactly the leakage the three tests are there to catch, and all three fail.
    workspace, raw, _, build_output = incoming
    for name in LEAKAGE_TESTS:
        assert any(name in line and "PASS" in line for line in build_output.splitlines()), name
    earlier = workspace.query(
        "select max(p.first_sold_at) from marts.dim_products as p"
        " inner join ml.product_category_assignments as a using (stock_code)"
        " where a.assignment_method = 'fit'"
    )[0][0]
    assert earlier < CUTOFF
    leaked = workspace.dbt(
        raw, "test", "--select", *LEAKAGE_TESTS, "--vars", f"{{new_customer_cutoff: '{earlier}'}}"
    )
    assert leaked.returncode != 0
    for name in LEAKAGE_TESTS:
        assert any(name in line and "FAIL" in line for line in leaked.stdout.splitlines()), name

"""What BI tools and analysts read, on the synthetic build: marts.segment_summary against an
independent pandas computation, the MetricFlow semantic layer through `mf query` against direct
SQL, table comments from persist_docs, and the dbt docs site with its lineage graph."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import dump_dom
from dbt_helpers import PROJECT_ROOT, Workspace, assert_built, run_cli

from retail_segments.ops import publish

pytestmark = pytest.mark.dbt

SCHEME_COLUMNS = {
    "rfm_score": "rfm_segment",
    "pca_cluster": "cluster_name",
    "tsne_segment": "segment_name",
    "interest_category": "interest_name",
}


def _expected_summary(workspace: Workspace) -> pd.DataFrame:
    """segment_summary computed in pandas from customer_segments, fct_orders and interests."""
    customers = workspace.frame(
        "select s.*, i.interest_name from marts.customer_segments s"
        " left join ml.customer_interests i using (customer_id)"
    )
    orders = workspace.frame("select customer_id, order_value, invoice_at from marts.fct_orders")
    as_of = customers.rfm_as_of.iloc[0]
    per_customer = (
        orders[orders.invoice_at < as_of]
        .groupby("customer_id")
        .agg(n_orders=("order_value", "size"), order_revenue=("order_value", "sum"))
    )
    customers = customers.join(per_customer, on="customer_id")
    customers["cluster_name"] = customers.cluster_name.fillna("not clustered")
    frames = []
    for scheme, column in SCHEME_COLUMNS.items():
        grouped = customers.groupby(column).agg(
            n_customers=("customer_id", "size"),
            n_orders=("n_orders", "sum"),
            revenue=("monetary", "sum"),
            order_revenue=("order_revenue", "sum"),
            median_recency_days=("recency_days", "median"),
            median_frequency=("frequency", "median"),
            median_monetary=("monetary", "median"),
            mean_frequency=("frequency", "mean"),
        )
        grouped["customer_share"] = grouped.n_customers / grouped.n_customers.sum()
        grouped["revenue_share"] = grouped.revenue / grouped.revenue.sum()
        grouped["avg_order_value"] = grouped.order_revenue / grouped.n_orders
        frames.append(grouped.rename_axis("segment_name").reset_index().assign(scheme=scheme))
    return pd.concat(frames).sort_values(["scheme", "segment_name"]).reset_index(drop=True)


def test_segment_summary_equals_an_independent_computation(synthetic_build: Workspace) -> None:
    actual = synthetic_build.frame(
        "select * from marts.segment_summary order by scheme, segment_name"
    )
    expected = _expected_summary(synthetic_build)
    assert actual.scheme.tolist() == expected.scheme.tolist()
    assert actual.segment_name.tolist() == expected.segment_name.tolist()
    assert actual.n_customers.tolist() == expected.n_customers.tolist()
    assert actual.n_orders.tolist() == expected.n_orders.tolist()
    for column in (
        "customer_share",
        "revenue",
        "revenue_share",
        "avg_order_value",
        "median_recency_days",
        "median_frequency",
        "median_monetary",
        "mean_frequency",
    ):
        np.testing.assert_allclose(actual[column], expected[column], rtol=1e-9, err_msg=column)
    assert actual.strategy.notna().all()
    assert set(actual.scheme) == set(SCHEME_COLUMNS)


def test_column_descriptions_are_comments_in_the_warehouse(synthetic_build: Workspace) -> None:
    comments = dict(
        synthetic_build.query(
            "select column_name, comment from duckdb_columns()"
            " where schema_name = 'marts' and table_name = 'segment_summary'"
        )
    )
    assert comments["avg_order_value"].startswith("Revenue of the segment's orders")
    table_comment = synthetic_build.query(
        "select comment from duckdb_tables() where table_name = 'segment_summary'"
    )[0][0]
    assert table_comment.startswith("One row per segmentation scheme and segment")


def test_every_model_states_its_grain_and_documents_every_column(
    synthetic_build: Workspace,
) -> None:
    """What the README promises a reader of the docs site and of the comments: every model's
    description starts with its grain ("One row per ..."), and every column it builds is declared
    and described in its yml (columns read from the built warehouse, so an undeclared one shows)."""
    manifest = json.loads((synthetic_build.root / "target" / "manifest.json").read_text())
    models = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == "retail_segments"
    ]
    assert len(models) > 60
    no_grain = [n["name"] for n in models if not n["description"].startswith("One row")]
    assert no_grain == []
    built = synthetic_build.query(
        "select schema_name, table_name, column_name from duckdb_columns()"
        " where schema_name in ('staging', 'intermediate', 'marts', 'ml', 'semantic')"
    )
    documented = {
        (node["schema"], node["alias"], name)
        for node in models
        for name, column in node["columns"].items()
        if column["description"].strip()
    }
    relations = {(node["schema"], node["alias"]) for node in models}
    undocumented = [row for row in built if row[:2] in relations and row not in documented]
    assert undocumented == []
    assert len(built) > 500


@pytest.fixture(scope="module")
def mf_project(synthetic_build: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that looks like the project to `mf` (which reads target/semantic_manifest.json
    under the project directory): the project's files linked in, the synthetic build's semantic
    manifest as its target/, and the synthetic build published to serving/ (what `mf` reads
    through the read-only `serving` target)."""
    root = tmp_path_factory.mktemp("mf_project")
    for name in ("dbt_project.yml", "profiles.yml", "models", "seeds", "macros"):
        (root / name).symlink_to(PROJECT_ROOT / name)
    (root / "target").mkdir()
    shutil.copy(synthetic_build.root / "target" / "semantic_manifest.json", root / "target")
    relations = publish.published_relations(synthetic_build.root / "target" / "manifest.json")
    info = publish.new_build_info("synthetic", PROJECT_ROOT)
    publish.publish(synthetic_build.warehouse, root / "serving", info, relations)
    return root


def _mf_query(project: Path, warehouse: Path, *args: str) -> pd.DataFrame:
    """Run `mf query ... --csv` in project through the `serving` target (the copy published from
    warehouse, read-only; the build's RETAIL_DUCKDB_PATH names its database) and return the
    result."""
    out = project / "result.csv"
    out.unlink(missing_ok=True)
    finished = subprocess.run(
        [str(Path(sys.executable).with_name("mf")), "query", *args, "--csv", str(out)],
        cwd=project,
        env={
            **os.environ,
            "DBT_TARGET": "serving",
            "RETAIL_DUCKDB_PATH": str(warehouse),
            "RETAIL_SERVING_DIR": str(project / "serving"),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0 and out.exists(), finished.stdout[-3000:] + finished.stderr
    return pd.read_csv(io.StringIO(out.read_text()))


def test_mf_revenue_by_segment_equals_sql(mf_project: Path, synthetic_build: Workspace) -> None:
    actual = _mf_query(mf_project, synthetic_build.warehouse, "--saved-query", "revenue_by_segment")
    actual = actual.sort_values("customer__segment").reset_index(drop=True)
    expected = synthetic_build.frame(
        "select s.segment_name as customer__segment, sum(o.order_value) as revenue,"
        " count(*) as orders, count(distinct o.customer_id) as customers"
        " from marts.fct_orders o join marts.customer_segments s using (customer_id)"
        " group by 1 order by 1"
    )
    assert actual.customer__segment.tolist() == expected.customer__segment.tolist()
    assert actual.orders.tolist() == expected.orders.tolist()
    assert actual.customers.tolist() == expected.customers.tolist()
    np.testing.assert_allclose(actual.revenue, expected.revenue, rtol=1e-9)
    np.testing.assert_allclose(
        actual.average_order_value, expected.revenue / expected.orders, rtol=1e-9
    )
    np.testing.assert_allclose(
        actual.revenue_per_customer, expected.revenue / expected.customers, rtol=1e-9
    )


def test_mf_revenue_by_country_and_month_equals_sql(
    mf_project: Path, synthetic_build: Workspace
) -> None:
    actual = _mf_query(
        mf_project,
        synthetic_build.warehouse,
        "--metrics",
        "revenue,customers",
        "--group-by",
        "order__country,metric_time__month",
    )
    expected = synthetic_build.frame(
        "select country, date_trunc('month', invoice_at) as month, sum(order_value) as revenue,"
        " count(distinct customer_id) as customers from marts.fct_orders group by all"
    )
    actual["month"] = pd.to_datetime(actual.metric_time__month)
    merged = expected.merge(
        actual, left_on=["country", "month"], right_on=["order__country", "month"], how="outer"
    )
    assert len(merged) == len(expected) == len(actual)
    np.testing.assert_allclose(merged.revenue_x, merged.revenue_y, rtol=1e-9)
    assert (merged.customers_x == merged.customers_y).all()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_docs_site_serves_the_lineage_graph(
    synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    # as `make docs` runs it: the command line's `docs` (dbt docs generate on the built warehouse)
    assert_built(run_cli(synthetic_build, synthetic_raw, "docs", "--no-compile"))
    target = synthetic_build.root / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    summary_id = "model.retail_segments.segment_summary"
    assert summary_id in catalog["nodes"]
    assert "model.retail_segments.customer_segments" in manifest["parent_map"][summary_id]
    assert "exposure.retail_segments.segment_report" in manifest["child_map"][summary_id]
    exposure = manifest["exposures"]["exposure.retail_segments.serving_duckdb"]
    assert exposure["owner"]["name"] and summary_id in exposure["depends_on"]["nodes"]
    assert {"revenue", "orders", "customers", "average_order_value", "revenue_per_customer"} <= {
        metric["name"] for metric in manifest["metrics"].values()
    }

    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dbt")),
            "docs",
            "serve",
            "--port",
            str(port),
            "--no-browser",
            "--project-dir",
            str(PROJECT_ROOT),
            "--profiles-dir",
            str(PROJECT_ROOT),
            "--target-path",
            str(target),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "RETAIL_DUCKDB_PATH": str(synthetic_build.warehouse)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/manifest.json", timeout=5) as response:
                    served = json.loads(response.read())
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "docs serve failed"
                time.sleep(0.5)
        assert summary_id in served["nodes"]
        lineage = f"{url}/#!/model/{summary_id}?g_v=1"
        dom = dump_dom(lineage)
        assert 'data-id="layer2-node"' in dom, "the lineage graph canvas was not created"
    finally:
        server.terminate()
        server.wait(timeout=30)

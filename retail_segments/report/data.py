"""Every query of the report, in one place, run read-only against the serving copy.

Each query names the columns the page draws, so a copy without one (of another version, or edited
by hand) is refused here, naming the column, and never reaches the charts.

The report reads only ``marts.*``, the ``ml`` tables `QUERIES` names and (when present) the serving
copy's ``serving.build_info``; it never writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from retail_segments.sql import quote_identifier

QUERIES: dict[str, str] = {
    "revenue_by_month": (
        "select month_start, n_orders, n_customers, revenue, avg_order_value"
        " from marts.eda_revenue_by_month order by month_start"
    ),
    "revenue_by_country": (
        "select country, n_orders, n_customers, revenue, revenue_share"
        " from marts.eda_revenue_by_country order by revenue desc"
    ),
    "orders_by_weekday": (
        "select weekday_name, n_orders, mean_daily_orders, revenue_share"
        " from marts.eda_orders_by_weekday order by iso_weekday"
    ),
    "orders_by_hour": (
        "select hour_of_day, n_orders, mean_daily_orders, revenue"
        " from marts.eda_orders_by_hour order by hour_of_day"
    ),
    "customers": (
        "select customer_id, recency_days, frequency, monetary, is_outlier"
        " from marts.customer_segments"
    ),
    "segment_summary": (
        "select scheme, segment_name, segment_rank, n_customers, customer_share, revenue,"
        " revenue_share, avg_order_value, mean_recency_days, median_recency_days,"
        " mean_frequency, median_frequency, mean_monetary, median_monetary, total_clv_12m,"
        " mean_clv_12m, mean_prob_no_purchase_90d, strategy"
        " from marts.segment_summary order by scheme, segment_rank"
    ),
    "cluster_profiles": (
        "select stage, cluster_id, segment_name, n_customers, mean_recency_days,"
        " mean_frequency, mean_monetary"
        " from ml.cluster_profiles order by stage, cluster_id"
    ),
    # The maps' hover shows each customer's R, F and M next to the embedding.
    "embeddings": (
        "select embedding.customer_id, embedding.pca_1, embedding.pca_2, embedding.tsne_1,"
        " embedding.tsne_2, embedding.pca_cluster_id, embedding.tsne_cluster_id,"
        " embedding.pca_segment_name, embedding.tsne_segment_name,"
        " customer.recency_days, customer.frequency, customer.monetary"
        " from ml.customer_embeddings as embedding"
        " left join marts.customer_segments as customer using (customer_id)"
        " order by embedding.customer_id"
    ),
    "model_selection": (
        "select stage, algorithm, n_clusters, silhouette, calinski_harabasz, davies_bouldin,"
        " is_selected, selection_reason"
        " from ml.cluster_model_selection order by stage, algorithm, n_clusters"
    ),
    "confusion": (
        "select actual_segment, predicted_segment, n_customers from ml.classifier_confusion_matrix"
    ),
    "classifier": (
        "select model, cv_accuracy, test_accuracy from ml.classifier_metrics where is_selected"
    ),
    "migration": (
        "select from_as_of, to_as_of, from_segment, to_segment, n_customers"
        " from marts.segment_migration"
        " where to_as_of = (select max(to_as_of) from marts.segment_migration)"
    ),
}


# The tables a query of `QUERIES` reads (named in a message about one of their columns).
_TABLE = re.compile(r"\b(?:from|join) ((?:marts|ml)\.\w+)")

# The queries whose rows every report draws: a table of them without rows is not a warehouse this
# product built (the migration has none until a second as-of date exists).
MUST_HOLD_ROWS = tuple(name for name in QUERIES if name != "migration")


class ReportDataError(RuntimeError):
    """The file read is not a warehouse the report can be drawn from (a table is missing)."""


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows.

    Attributes
    ----------
    frames : dict[str, pandas.DataFrame]
        One frame per query of `QUERIES`, under the same key.
    build_info : dict[str, object]
        The serving copy's ``serving.build_info`` row (build_id, built_at, ...), empty when the
        file read is not a published serving copy (e.g. the build warehouse).
    """

    frames: dict[str, pd.DataFrame]
    build_info: dict[str, object]


def load_report_data(warehouse: Path) -> ReportData:
    """Run every query of the report against a DuckDB file, opened read-only.

    Parameters
    ----------
    warehouse : Path
        The serving copy (or a build warehouse) written by ``make build``.

    Returns
    -------
    ReportData
        The frames of `QUERIES` and the build info.

    Raises
    ------
    ReportDataError
        When the file cannot be opened as DuckDB, or a table or column the report reads is
        missing, or a table has no rows (names the file and the fix).
    """
    try:
        connection = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as error:
        raise ReportDataError(
            f"cannot open {warehouse} read-only as a DuckDB file ({str(error).splitlines()[0]});"
            " pass the serving copy written by `make build` with --warehouse"
        ) from error
    with connection:
        frames = {}
        try:
            for name, sql in QUERIES.items():
                frames[name] = connection.sql(sql).df()
        except duckdb.CatalogException as error:
            raise ReportDataError(
                f"{warehouse} is not a retail-segments warehouse the report can read"
                f" ({str(error).splitlines()[0]}); run `make build` and pass its serving copy"
                " with --warehouse"
            ) from error
        except duckdb.BinderException as error:
            # a copy of another version, or edited: a column a query names is not there
            raise ReportDataError(
                f"{warehouse} lacks a column the report draws from"
                f" {', '.join(dict.fromkeys(_TABLE.findall(sql)))} ({str(error).splitlines()[0]});"
                " it is not a serving copy this version of the product wrote: run `make build`"
                " and pass its serving copy with --warehouse"
            ) from error
        empty = [name for name in MUST_HOLD_ROWS if frames[name].empty]
        if empty:
            raise ReportDataError(
                f"{warehouse} holds no rows for the report's {', '.join(empty)}, which every build"
                " of the product fills; run `make build` and pass its serving copy with"
                " --warehouse"
            )
        catalog = connection.sql("select current_database()").fetchall()[0][0]
        has_build_info = connection.sql(
            "select count(*) from information_schema.tables"
            " where table_catalog = current_database()"
            " and table_schema = 'serving' and table_name = 'build_info'"
        ).fetchall()[0][0]
        rows = (
            connection.sql(f"select * from {quote_identifier(catalog)}.serving.build_info").df()
            if has_build_info
            else pd.DataFrame()
        )
        build_info = {str(k): v for k, v in rows.iloc[0].items()} if len(rows) else {}
    return ReportData(frames, build_info)

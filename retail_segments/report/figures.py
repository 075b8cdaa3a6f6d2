"""One function per chart of the report, each returning a plotly Figure.

Every function takes frames shaped like the report's queries (`retail_segments.report.data`),
already aggregated by the warehouse, and returns a `plotly.graph_objects.Figure` that works on its
own (in a notebook too): a title, a subtitle with the chart's key figures, and hover text.

- Charts of segments draw one trace per segment, so that clicking a legend entry hides that
  segment (double-click shows it alone), and their hover shows the segment with its figures.
- The customer maps draw one marker per customer, whose hover shows the customer id, R, F, M and
  segment; above ``max_points`` customers a random sample (fixed seed) is drawn, and the subtitle
  says so.
- Colours: segments in the order given (cluster id, or rank in the summary), from `PALETTE`;
  noise and unclustered customers grey.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Tableau 10, then ten lighter colours for schemes with more segments (the RFM map has eleven).
PALETTE: tuple[str, ...] = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#a0cbe8",
    "#ffbe7d",
    "#8cd17d",
    "#b6992d",
    "#f1ce63",
    "#86bcb6",
    "#ff9d9a",
    "#d4a6c8",
    "#d7b5a6",
    "#79706e",
)
GREY = "#c7c7c7"
BAR_COLOUR = PALETTE[0]
NOISE_LABEL = "noise"
# The segment summary's name for customers outside the part I clusters.
UNCLUSTERED_LABEL = "not clustered"
MAP_MAX_POINTS = 20_000
HISTOGRAM_BINS = 30
TOP_COUNTRIES = 12

STAGE_TITLES: dict[str, str] = {"pca": "part I (PCA)", "tsne": "part II (t-SNE)"}
SCHEME_TITLES: dict[str, str] = {
    "rfm_score": "RFM-score segments",
    "pca_cluster": "Part I clusters (PCA)",
    "tsne_segment": "Part II segments (t-SNE)",
    "interest_category": "Interest categories",
}
# measure column -> (title, axis label, unit in the hover)
RFM_MEASURES: dict[str, tuple[str, str, str]] = {
    "recency_days": ("Recency", "days since the last purchase", "days"),
    "frequency": ("Frequency", "orders (one bar per count)", "orders"),
    "monetary": ("Monetary", "revenue (£)", "£"),
}

# A small template of our own: plotly's named templates add ~7 kB of JSON to every figure.
TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#222"},
        "colorway": list(PALETTE),
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "xaxis": {
            "gridcolor": "#e3e3e3",
            "linecolor": "#999",
            "zeroline": False,
            "automargin": True,
        },
        "yaxis": {
            "gridcolor": "#e3e3e3",
            "linecolor": "#999",
            "zeroline": False,
            "automargin": True,
        },
        "hoverlabel": {"font": {"family": "system-ui, sans-serif"}},
        "title": {"x": 0.01, "xanchor": "left", "font": {"size": 15}},
    }
)


def records(frame: pd.DataFrame) -> list[Any]:
    """The frame's rows as named tuples (attribute per column; untyped, as table rows are)."""
    return list(frame.itertuples())


def segment_colours(names: Sequence[str], given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Give each segment name a colour: the given one, else the next unused palette colour
    (noise and unclustered customers grey).

    Parameters
    ----------
    names : Sequence[str]
        Segment names in drawing order (e.g. one stage's clusters in cluster order).
    given : Mapping[str, str] or None
        Colours already chosen, e.g. for the same stage's other charts, so that a segment looks
        alike everywhere.

    Returns
    -------
    dict[str, str]
        The given colours plus one for every other name.
    """
    colours = dict(given or {})
    used = set(colours.values())
    spare = itertools.chain((c for c in PALETTE if c not in used), itertools.cycle(PALETTE))
    for name in names:
        if name not in colours:
            grey = name in (NOISE_LABEL, UNCLUSTERED_LABEL)
            colours[name] = GREY if grey else next(spare)
    return colours


def revenue_by_month_figure(months: pd.DataFrame) -> go.Figure:
    """Revenue per calendar month, from ``marts.eda_revenue_by_month``.

    Parameters
    ----------
    months : pandas.DataFrame
        One row per month: month_start, revenue, n_orders, n_customers, avg_order_value.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace; hover shows the month's revenue, orders, customers and average order.
    """
    month_start = pd.to_datetime(months.month_start)
    figure = go.Figure(
        go.Bar(
            x=month_start,
            y=months.revenue.to_numpy(dtype=float),
            marker_color=BAR_COLOUR,
            customdata=months[["n_orders", "n_customers", "avg_order_value"]].to_numpy(float),
            hovertemplate=(
                "<b>%{x|%B %Y}</b><br>revenue £%{y:,.0f}<br>orders %{customdata[0]:,.0f}"
                "<br>customers %{customdata[1]:,.0f}<br>average order £%{customdata[2]:,.0f}"
                "<extra></extra>"
            ),
        )
    )
    total = float(months.revenue.sum())
    figure.update_xaxes(tickformat="%b %y", dtick="M1")
    return _style(
        figure,
        "Revenue by month",
        f"£{total:,.0f} over {len(months)} months, net of returns",
        y_title="revenue (£)",
    )


def revenue_by_country_figure(countries: pd.DataFrame, top: int = TOP_COUNTRIES) -> go.Figure:
    """Revenue of the top countries, from ``marts.eda_revenue_by_country``.

    Parameters
    ----------
    countries : pandas.DataFrame
        One row per country: country, revenue, revenue_share, n_orders, n_customers.
    top : int
        How many countries (most revenue first) to draw.

    Returns
    -------
    plotly.graph_objects.Figure
        One horizontal bar trace, most revenue on top; hover shows share, orders and customers.
    """
    rows = countries.sort_values("revenue", ascending=False).head(top).iloc[::-1]
    figure = go.Figure(
        go.Bar(
            x=rows.revenue.to_numpy(dtype=float),
            y=rows.country.tolist(),
            orientation="h",
            marker_color=BAR_COLOUR,
            text=[f"{share:.1%}" for share in rows.revenue_share],
            textposition="auto",
            customdata=rows[["revenue_share", "n_orders", "n_customers"]].to_numpy(float),
            hovertemplate=(
                "<b>%{y}</b><br>revenue £%{x:,.0f} (%{customdata[0]:.1%})"
                "<br>orders %{customdata[1]:,.0f}<br>customers %{customdata[2]:,.0f}"
                "<extra></extra>"
            ),
        )
    )
    return _style(
        figure,
        "Revenue by country",
        f"the {len(rows)} countries with the most revenue, of {len(countries)}",
        x_title="revenue (£)",
        height=400,
    )


def orders_by_weekday_figure(weekdays: pd.DataFrame) -> go.Figure:
    """Orders per weekday, from ``marts.eda_orders_by_weekday``.

    Parameters
    ----------
    weekdays : pandas.DataFrame
        One row per weekday with orders: weekday_name, n_orders, mean_daily_orders,
        revenue_share.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace; hover shows orders per trading day and the revenue share.
    """
    figure = go.Figure(
        go.Bar(
            x=weekdays.weekday_name.tolist(),
            y=weekdays.n_orders.to_numpy(dtype=float),
            marker_color=BAR_COLOUR,
            customdata=weekdays[["mean_daily_orders", "revenue_share"]].to_numpy(float),
            hovertemplate=(
                "<b>%{x}</b><br>orders %{y:,.0f}<br>per trading day %{customdata[0]:,.1f}"
                "<br>revenue share %{customdata[1]:.1%}<extra></extra>"
            ),
        )
    )
    return _style(
        figure,
        "Orders by weekday",
        "weekdays without orders (the shop closes on Saturdays) are left out",
        y_title="orders",
    )


def orders_by_hour_figure(hours: pd.DataFrame) -> go.Figure:
    """Orders per hour of the invoice time, from ``marts.eda_orders_by_hour``.

    Parameters
    ----------
    hours : pandas.DataFrame
        One row per hour with orders: hour_of_day, n_orders, mean_daily_orders, revenue.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace; hover shows orders per trading day and revenue.
    """
    figure = go.Figure(
        go.Bar(
            x=hours.hour_of_day.to_numpy(dtype=int),
            y=hours.n_orders.to_numpy(dtype=float),
            marker_color=BAR_COLOUR,
            customdata=hours[["mean_daily_orders", "revenue"]].to_numpy(float),
            hovertemplate=(
                "<b>%{x}:00 to %{x}:59</b><br>orders %{y:,.0f}"
                "<br>per trading day %{customdata[0]:,.1f}<br>revenue £%{customdata[1]:,.0f}"
                "<extra></extra>"
            ),
        )
    )
    figure.update_xaxes(dtick=1)
    return _style(
        figure,
        "Orders by hour of day",
        "hour of the invoice time",
        x_title="hour",
        y_title="orders",
    )


def rfm_distribution_figure(
    customers: pd.DataFrame, measure: str, bins: int = HISTOGRAM_BINS
) -> go.Figure:
    """Histogram of one RFM measure over the customers that are not outliers.

    Binned here, so the page carries counts rather than every customer.

    Parameters
    ----------
    customers : pandas.DataFrame
        One row per customer (``marts.customer_segments``): recency_days, frequency, monetary,
        is_outlier.
    measure : str
        A key of `RFM_MEASURES`: ``recency_days``, ``frequency`` or ``monetary``.
    bins : int
        Number of equal-width bins for recency and monetary; frequency gets one bar per count.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace of customers per bin; hover shows the bin's range, customers and share.
    """
    title, axis_label, unit = RFM_MEASURES[measure]
    regular = customers[~customers.is_outlier.astype(bool)]
    values = regular[measure].to_numpy(dtype=float)
    if measure == "frequency":
        edges = np.arange(0.5, max(values.max(initial=0.0), 1.0) + 1.5)
    else:
        edges = np.histogram_bin_edges(values, bins=bins)
    counts, edges = np.histogram(values, bins=edges)
    shares = counts / max(len(values), 1)
    if measure == "frequency":
        x = (edges[:-1] + 0.5).astype(int)
        hover = "<b>%{x} orders</b>"
        customdata = shares[:, None]
    else:
        x = (edges[:-1] + edges[1:]) / 2
        money = "£" if unit == "£" else ""
        days = " days" if unit == "days" else ""
        hover = f"<b>{money}%{{customdata[1]:,.0f}} to {money}%{{customdata[2]:,.0f}}{days}</b>"
        customdata = np.column_stack([shares, edges[:-1], edges[1:]])
    figure = go.Figure(
        go.Bar(
            x=x,
            y=counts,
            width=np.diff(edges),
            marker={"color": BAR_COLOUR, "line": {"color": "#fff", "width": 0.5}},
            customdata=customdata,
            hovertemplate=hover + "<br>%{y:,} customers (%{customdata[0]:.1%})<extra></extra>",
        )
    )
    n_outliers = len(customers) - len(regular)
    return _style(
        figure,
        f"{title} distribution",
        f"{len(regular):,} customers; left out as outliers (frequency or monetary above the 95th"
        f" percentile): {n_outliers:,}",
        x_title=axis_label,
        y_title="customers",
    )


def segment_shares_figure(
    summary: pd.DataFrame, scheme: str, colours: Mapping[str, str] | None = None
) -> go.Figure:
    """One scheme's segments: their share of the customers beside their share of revenue.

    Parameters
    ----------
    summary : pandas.DataFrame
        ``marts.segment_summary`` (any schemes): scheme, segment_name, segment_rank, n_customers,
        customer_share, revenue, revenue_share, avg_order_value, mean_recency_days,
        mean_frequency, mean_monetary.
    scheme : str
        The scheme to draw (e.g. ``tsne_segment``).
    colours : Mapping[str, str] or None
        Colours of some segments (e.g. the matching stage's clusters); others get the next
        palette colours (`segment_colours`).

    Returns
    -------
    plotly.graph_objects.Figure
        Two stacked 100 % bars (customers, revenue) with one trace per segment in rank order;
        hover shows the segment's customers, revenue, shares, average order and mean R, F, M.
    """
    rows = summary[summary.scheme == scheme].sort_values("segment_rank")
    names = [str(name) for name in rows.segment_name]
    palette = segment_colours(names, colours)
    figure = go.Figure()
    for name, row in zip(names, records(rows), strict=True):
        figure.add_trace(
            go.Bar(
                name=name,
                y=["customers", "revenue"],
                x=[float(row.customer_share) * 100, float(row.revenue_share) * 100],
                orientation="h",
                marker={"color": palette[name], "line": {"color": "#fff", "width": 1}},
                texttemplate="%{x:.0f}%",
                textposition="inside",
                textangle=0,
                insidetextanchor="middle",
                hovertemplate=(
                    f"<b>{_text(name)}</b><br>customers {row.n_customers:,}"
                    f" ({row.customer_share:.1%})<br>revenue £{row.revenue:,.0f}"
                    f" ({row.revenue_share:.1%})<br>average order £{row.avg_order_value:,.0f}"
                    f"<br>mean R {row.mean_recency_days:.0f} days, F {row.mean_frequency:.1f}"
                    f" orders, M £{row.mean_monetary:,.0f}<extra></extra>"
                ),
            )
        )
    figure.update_layout(
        barmode="stack",
        uniformtext={"minsize": 10, "mode": "hide"},
        legend={"traceorder": "normal"},
    )
    figure.update_xaxes(range=[0, 100], ticksuffix="%")
    figure.update_yaxes(autorange="reversed")
    title = SCHEME_TITLES.get(scheme, scheme)
    return _style(
        figure,
        f"{title}: customers and revenue",
        f"share of the scheme's {int(rows.n_customers.sum()):,} customers and"
        f" £{rows.revenue.sum():,.0f} revenue; segments by revenue",
        height=max(280, 140 + 20 * len(rows)),
    )


def segment_value_figure(
    summary: pd.DataFrame, scheme: str, colours: Mapping[str, str] | None = None
) -> go.Figure:
    """One scheme's segments: what their customers are worth over the next 12 months and how
    likely they are to buy nothing in the next 90 days.

    Parameters
    ----------
    summary : pandas.DataFrame
        ``marts.segment_summary``: scheme, segment_name, segment_rank, n_customers,
        total_clv_12m, mean_clv_12m, mean_prob_no_purchase_90d.
    scheme : str
        The scheme to draw (e.g. ``tsne_segment``).
    colours : Mapping[str, str] or None
        Colours of some segments (`segment_colours`).

    Returns
    -------
    plotly.graph_objects.Figure
        One horizontal bar per segment (one trace each, so the legend toggles it): total 12-month
        CLV; hover shows customers, total and mean CLV and the mean churn risk.
    """
    rows = summary[summary.scheme == scheme].sort_values("total_clv_12m", ascending=False)
    names = [str(name) for name in rows.segment_name]
    palette = segment_colours(names, colours)
    figure = go.Figure()
    for name, row in zip(names, records(rows), strict=True):
        figure.add_trace(
            go.Bar(
                name=name,
                y=[name],
                x=[row.total_clv_12m],
                orientation="h",
                marker={"color": palette[name]},
                text=[f"churn risk {row.mean_prob_no_purchase_90d:.0%}"],
                textposition="auto",
                hovertemplate=(
                    f"<b>{_text(name)}</b><br>customers {row.n_customers:,}<br>12-month CLV"
                    f" £{row.total_clv_12m:,.0f} (£{row.mean_clv_12m:,.0f} per customer)<br>"
                    f"mean chance of no purchase in 90 days {row.mean_prob_no_purchase_90d:.0%}"
                    "<extra></extra>"
                ),
            )
        )
    figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(tickprefix="£")
    title = SCHEME_TITLES.get(scheme, scheme)
    return _style(
        figure,
        f"{title}: what the customers are worth from here on",
        f"predicted 12-month CLV, £{rows.total_clv_12m.sum():,.0f} in all; the label is the"
        " segment's mean churn risk (no purchase in the next 90 days)",
        x_title="12-month CLV (GBP, discounted)",
    )


def min_max_scale(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Scale each column to [0, 1] over the rows (min to 0, max to 1; a constant column to 0.5).

    Parameters
    ----------
    frame : pandas.DataFrame
        Any frame holding columns.
    columns : Sequence[str]
        Numeric columns to scale.

    Returns
    -------
    pandas.DataFrame
        A copy of frame with columns scaled; frame is unchanged.
    """
    scaled = frame.copy()
    for column in columns:
        low, high = frame[column].min(), frame[column].max()
        scaled[column] = 0.5 if high == low else (frame[column] - low) / (high - low)
    return scaled


def radar_figure(
    profiles: pd.DataFrame, stage: str, colours: Mapping[str, str] | None = None
) -> go.Figure:
    """Radar chart of each cluster's mean R, F and M in one clustering stage, as the study drew it.

    The means are min-max scaled across the stage's clusters (1 = the highest mean; for recency
    the longest since the last purchase); DBSCAN noise (cluster_id < 0) is left out.

    Parameters
    ----------
    profiles : pandas.DataFrame
        ``ml.cluster_profiles``: stage, cluster_id, segment_name, n_customers,
        mean_recency_days, mean_frequency, mean_monetary.
    stage : str
        ``pca`` or ``tsne``.
    colours : Mapping[str, str] or None
        Colours of the segments (`segment_colours`); by default palette order by cluster.

    Returns
    -------
    plotly.graph_objects.Figure
        One filled polar trace per cluster (in cluster order); hover shows the segment's
        customers and unscaled means.
    """
    columns = ["mean_recency_days", "mean_frequency", "mean_monetary"]
    axes = ["Recency", "Frequency", "Monetary"]
    clusters = profiles[(profiles.stage == stage) & (profiles.cluster_id >= 0)]
    clusters = clusters.sort_values("cluster_id")
    scaled = min_max_scale(clusters, columns)
    palette = segment_colours([str(name) for name in clusters.segment_name], colours)
    figure = go.Figure()
    for row, scaled_row in zip(records(clusters), records(scaled), strict=True):
        name = str(row.segment_name)
        r = [getattr(scaled_row, column) for column in columns]
        figure.add_trace(
            go.Scatterpolar(
                name=name,
                r=[*r, r[0]],
                theta=[*axes, axes[0]],
                fill="toself",
                opacity=0.55,
                line={"color": palette[name], "width": 2},
                hovertemplate=(
                    f"<b>{_text(name)}</b><br>customers {row.n_customers:,}"
                    f"<br>mean recency {row.mean_recency_days:,.0f} days"
                    f"<br>mean frequency {row.mean_frequency:,.1f} orders"
                    f"<br>mean monetary £{row.mean_monetary:,.0f}"
                    "<br>%{theta} scaled: %{r:.2f}<extra></extra>"
                ),
            )
        )
    figure.update_layout(
        polar={
            "radialaxis": {"range": [0, 1.05], "tickvals": [0, 0.5, 1], "gridcolor": "#e3e3e3"},
            "angularaxis": {"gridcolor": "#e3e3e3"},
            "bgcolor": "#fff",
        }
    )
    return _style(
        figure,
        f"Segment profiles, {STAGE_TITLES[stage]}",
        f"mean R, F and M of {len(clusters)} clusters, min-max scaled across them",
        height=460,
    )


def customer_map_figure(
    embeddings: pd.DataFrame,
    stage: str,
    colours: Mapping[str, str] | None = None,
    max_points: int = MAP_MAX_POINTS,
    seed: int = 0,
) -> go.Figure:
    """The customers in one stage's 2-D embedding, coloured by segment.

    Parameters
    ----------
    embeddings : pandas.DataFrame
        ``ml.customer_embeddings`` joined with R, F, M: customer_id, ``<stage>_1``,
        ``<stage>_2``, ``<stage>_cluster_id``, ``<stage>_segment_name``, recency_days,
        frequency, monetary.
    stage : str
        ``pca`` or ``tsne``.
    colours : Mapping[str, str] or None
        Colours of the segments (`segment_colours`); by default palette order by cluster.
    max_points : int
        Above this many customers, draw a random sample of this size (seed) and say so.
    seed : int
        Random state of the sample.

    Returns
    -------
    plotly.graph_objects.Figure
        One marker trace per segment (cluster order; noise last, grey); hover shows the
        customer id, R, F, M and segment. Drag to zoom, double-click to reset.
    """
    n_customers = len(embeddings)
    shown = embeddings
    if n_customers > max_points:
        shown = embeddings.sample(n=max_points, random_state=seed).sort_values("customer_id")
    cluster_id = shown[f"{stage}_cluster_id"]
    names = shown[f"{stage}_segment_name"].where(cluster_id >= 0).fillna(NOISE_LABEL)
    order = (
        pd.DataFrame({"cluster_id": cluster_id, "name": names})
        .sort_values("cluster_id")
        .drop_duplicates("name")
        .name.tolist()
    )
    order = [name for name in order if name != NOISE_LABEL] + (
        [NOISE_LABEL] if NOISE_LABEL in order else []
    )
    ids = shown.customer_id.to_numpy()
    # float32 halves the page's share for these arrays; only when every id is exact in it.
    exact = np.abs(ids).max(initial=0) < 2**24
    dtype = np.float32 if exact else np.float64
    palette = segment_colours(order, colours)
    figure = go.Figure()
    for name in order:
        members = shown[names == name]
        figure.add_trace(
            go.Scatter(
                name=name,
                x=members[f"{stage}_1"].to_numpy(dtype=np.float32),
                y=members[f"{stage}_2"].to_numpy(dtype=np.float32),
                mode="markers",
                marker={"size": 5, "opacity": 0.75, "color": palette[name]},
                customdata=members[["customer_id", "recency_days", "frequency", "monetary"]]
                .to_numpy(dtype=float)
                .astype(dtype),
                hovertemplate=(
                    "<b>customer %{customdata[0]:.0f}</b>"
                    f"<br>segment {_text(name)}"
                    "<br>R %{customdata[1]:,.0f} days, F %{customdata[2]:,.0f} orders,"
                    " M £%{customdata[3]:,.0f}<extra></extra>"
                ),
            )
        )
    figure.update_layout(hovermode="closest", dragmode="zoom")
    x_label, y_label = (
        ("principal component 1", "principal component 2")
        if stage == "pca"
        else ("t-SNE 1", "t-SNE 2")
    )
    subtitle = (
        f"a random sample of {max_points:,} of the {n_customers:,} clustered customers"
        if n_customers > max_points
        else f"{n_customers:,} clustered customers"
    ) + ", coloured by segment; drag to zoom"
    return _style(
        figure,
        f"Customer map, {STAGE_TITLES[stage]}",
        subtitle,
        x_title=x_label,
        y_title=y_label,
        height=540,
    )


def silhouette_figure(selection: pd.DataFrame, stage: str) -> go.Figure:
    """Silhouette against the number of clusters of every candidate in one stage.

    Parameters
    ----------
    selection : pandas.DataFrame
        ``ml.cluster_model_selection``: stage, algorithm, n_clusters, silhouette,
        calinski_harabasz, davies_bouldin, is_selected, selection_reason.
    stage : str
        ``pca`` or ``tsne``.

    Returns
    -------
    plotly.graph_objects.Figure
        One line per algorithm (alphabetical) and a star on the selected model; hover shows
        the three scores.
    """
    rows = selection[(selection.stage == stage) & selection.silhouette.notna()]
    scores = ["silhouette", "calinski_harabasz", "davies_bouldin"]
    hover = (
        "<br>%{x} clusters: silhouette %{y:.3f}"
        "<br>Calinski-Harabasz %{customdata[0]:,.0f}, Davies-Bouldin %{customdata[1]:.3f}"
    )
    figure = go.Figure()
    for index, (algorithm, group) in enumerate(rows.groupby("algorithm", sort=True)):
        group = group.sort_values("n_clusters")
        figure.add_trace(
            go.Scatter(
                name=str(algorithm),
                x=group.n_clusters.to_numpy(dtype=int),
                y=group.silhouette.to_numpy(dtype=float),
                mode="lines+markers",
                line={"color": PALETTE[index % len(PALETTE)]},
                customdata=group[scores[1:]].to_numpy(dtype=float),
                hovertemplate=f"<b>{_text(algorithm)}</b>" + hover + "<extra></extra>",
            )
        )
    chosen = selection[(selection.stage == stage) & selection.is_selected.astype(bool)]
    subtitle = "no model selected"
    if len(chosen):
        best = chosen.iloc[0]
        figure.add_trace(
            go.Scatter(
                name="selected",
                x=[int(best.n_clusters)],
                y=[float(best.silhouette)],
                mode="markers",
                marker={"symbol": "star", "size": 16, "color": "#222"},
                customdata=[[float(best.calinski_harabasz), float(best.davies_bouldin)]],
                hovertemplate=f"<b>selected: {_text(best.algorithm)}</b>"
                + hover
                + f"<br>{_text(best.selection_reason)}<extra></extra>",
            )
        )
        subtitle = (
            f"selected: {best.algorithm} with {best.n_clusters} clusters (silhouette"
            f" {best.silhouette:.3f}, {best.selection_reason})"
        )
    subtitle += _zoom_to_the_grid(figure, rows, chosen)
    return _style(
        figure,
        f"Silhouette by number of clusters, {STAGE_TITLES[stage]}",
        subtitle,
        x_title="number of clusters",
        y_title="silhouette",
    )


def confusion_matrix_figure(confusion: pd.DataFrame, classifier: pd.DataFrame) -> go.Figure:
    """The segment classifier's confusion matrix on the test split.

    Parameters
    ----------
    confusion : pandas.DataFrame
        ``ml.classifier_confusion_matrix``: actual_segment, predicted_segment, n_customers.
    classifier : pandas.DataFrame
        The selected row of ``ml.classifier_metrics`` (model, test_accuracy, cv_accuracy), or
        an empty frame.

    Returns
    -------
    plotly.graph_objects.Figure
        One heat map over every segment seen (actual rows, predicted columns, counts written in
        the cells); hover shows the count and its share of the actual segment.
    """
    matrix = confusion.pivot_table(
        index="actual_segment",
        columns="predicted_segment",
        values="n_customers",
        aggfunc="sum",
        fill_value=0,
    )
    labels = sorted(set(matrix.index) | set(matrix.columns))
    matrix = matrix.reindex(index=labels, columns=labels, fill_value=0)
    counts = matrix.to_numpy(dtype=float)
    row_totals = counts.sum(axis=1, keepdims=True)
    row_shares = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0)
    figure = go.Figure(
        go.Heatmap(
            z=counts,
            x=labels,
            y=labels,
            colorscale="Blues",
            customdata=row_shares,
            texttemplate="%{z:,.0f}",
            hovertemplate=(
                "actual <b>%{y}</b><br>predicted <b>%{x}</b><br>%{z:,.0f} customers"
                " (%{customdata:.1%} of the actual segment)<extra></extra>"
            ),
            colorbar={"title": {"text": "customers"}},
        )
    )
    figure.update_yaxes(autorange="reversed")
    subtitle = "test split of the part II segment classifier"
    if len(classifier):
        best = classifier.iloc[0]
        subtitle = (
            f"test split; {best.model}: test accuracy {best.test_accuracy:.3f},"
            f" cross-validated {best.cv_accuracy:.3f}"
        )
    return _style(
        figure,
        "Classifier confusion matrix",
        subtitle,
        x_title="predicted",
        y_title="actual",
        height=560,
        width=700,
    )


def migration_figure(migration: pd.DataFrame) -> go.Figure:
    """Customers moving between segments from one as-of date to the next.

    Parameters
    ----------
    migration : pandas.DataFrame
        ``marts.segment_migration`` for one pair of dates (not empty): from_as_of, to_as_of,
        from_segment, to_segment, n_customers.

    Returns
    -------
    plotly.graph_objects.Figure
        One heat map (segment at the earlier date in rows, at the later in columns, counts in
        the cells); hover shows the count and its share of the earlier segment.

    Raises
    ------
    ValueError
        When migration is empty (the history holds one date: there is nothing to draw).
    """
    if migration.empty:
        raise ValueError("no segment migration to draw: the history holds one as-of date")
    matrix = migration.pivot_table(
        index="from_segment",
        columns="to_segment",
        values="n_customers",
        aggfunc="sum",
        fill_value=0,
    )
    counts = matrix.to_numpy(dtype=float)
    row_totals = counts.sum(axis=1, keepdims=True)
    row_shares = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0)
    from_as_of = pd.Timestamp(migration.from_as_of.iloc[0])
    to_as_of = pd.Timestamp(migration.to_as_of.iloc[0])
    figure = go.Figure(
        go.Heatmap(
            z=counts,
            x=[str(label) for label in matrix.columns],
            y=[str(label) for label in matrix.index],
            colorscale="Blues",
            customdata=row_shares,
            texttemplate="%{z:,.0f}",
            hovertemplate=(
                f"{from_as_of:%Y-%m-%d} <b>%{{y}}</b><br>{to_as_of:%Y-%m-%d} <b>%{{x}}</b>"
                "<br>%{z:,.0f} customers (%{customdata:.1%} of the earlier segment)"
                "<extra></extra>"
            ),
            colorbar={"title": {"text": "customers"}},
        )
    )
    figure.update_yaxes(autorange="reversed")
    return _style(
        figure,
        "Segment migration",
        f"customers by segment at {from_as_of:%Y-%m-%d} (rows) and at {to_as_of:%Y-%m-%d}"
        " (columns)",
        x_title=f"segment at {to_as_of:%Y-%m-%d}",
        y_title=f"segment at {from_as_of:%Y-%m-%d}",
        height=560,
        width=700,
    )


def _zoom_to_the_grid(figure: go.Figure, rows: pd.DataFrame, chosen: pd.DataFrame) -> str:
    """Fit the axes to the k grid (algorithms with several candidates, and the selected one).

    A lone candidate far outside it (DBSCAN finding 35 clusters) would squash every curve;
    it stays a trace, just outside the initial axes. Returns a note naming such candidates
    (empty when there are none), for the subtitle.
    """
    on_grid = rows.groupby("algorithm").n_clusters.transform("size") > 1
    ks = pd.concat([rows.n_clusters[on_grid], chosen.n_clusters])
    if ks.empty:
        return ""
    inside = rows.n_clusters.between(ks.min(), ks.max())
    if inside.all():
        return ""
    silhouettes = rows.silhouette[inside]
    pad = max(float(silhouettes.max() - silhouettes.min()) * 0.08, 0.01)
    figure.update_xaxes(range=[ks.min() - 0.5, ks.max() + 0.5])
    figure.update_yaxes(range=[silhouettes.min() - pad, silhouettes.max() + pad])
    outside = ", ".join(
        f"{row.algorithm} with {row.n_clusters} clusters ({row.silhouette:.3f})"
        for row in records(rows[~inside])
    )
    return f"\noff the axes (autoscale to see): {outside}"


def _text(value: object) -> str:
    """Return value as text safe inside plotly's HTML-like labels (<, > and & escaped)."""
    return escape(str(value), quote=False)


def _style(
    figure: go.Figure,
    title: str,
    subtitle: str,
    *,
    x_title: str | None = None,
    y_title: str | None = None,
    height: int = 360,
    width: int = 640,
) -> go.Figure:
    """Apply the report's template, size, title and subtitle (lines split at newlines); return
    figure."""
    lines = subtitle.split("\n")
    figure.update_layout(
        template=TEMPLATE,
        title={"text": _text(title), "subtitle": {"text": "<br>".join(map(_text, lines))}},
        width=width,
        height=height + 14 * (len(lines) - 1),
        margin={"l": 64, "r": 24, "t": 58 + 14 * len(lines), "b": 48},
    )
    if x_title is not None:
        figure.update_xaxes(title_text=_text(x_title))
    if y_title is not None:
        figure.update_yaxes(title_text=_text(y_title))
    return figure

{#-
  RFM per customer at every as-of date computed so far: the one home of the RFM query. A first
  run (or `dbt build --full-refresh`, which starts afresh) computes the RFM as of
  var('rfm_as_of') (midnight; only purchases strictly before it count). An incremental run
  computes it again at EVERY as-of date the table holds, plus var('rfm_as_of'), from the current
  lines with the same rules, and replaces those dates' rows (delete+insert on rfm_as_of): a late
  line dated before a stored month end (a daily file loaded incrementally) reaches that month
  end, and every date reads the same input as the marts. marts.customer_rfm is this model's rows
  at the build's var('rfm_as_of'); `python -m retail_segments backfill` runs this model once per
  month end with --vars '{rfm_as_of: ...}' to fill the segment history. Re-running a date rewrites
  the same rows, so a backfill run twice changes nothing. Cost: the lines are joined to every
  stored date (about 13 after a whole backfill), each run.

  recency_days = whole days from the last purchase to the as-of moment; frequency = distinct
  invoices; monetary = the lines' value as known at the as-of moment: total_price when the return
  that cancels part of a line was made before it, else the line's gross value
  (int_sales_lines__returns_dated), so a month end backfilled later reads the same revenue as a
  build on that day did. At the build's own as-of date, after the last line, that is total_price.
  Everything below is per as-of date (grouped or partitioned by rfm_as_of): dates never mix.
  Scores 1-5 are quintiles by ntile(5) over that date's customers; ties are broken
  by customer_id (ascending), so every build gives the same scores:
    r_score: most recent = 5 (order by recency_days desc, customer_id)
    f_score: most invoices = 5 (order by frequency, customer_id)
    m_score: most revenue = 5 (order by monetary, customer_id)
  The named segment comes from the seed rfm_segment_map (the classic R x F map); is_outlier:
  frequency or monetary above its 95th percentile over that date's customers.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='rfm_as_of',
        on_schema_change='fail'
    )
}}
with

lines as (

    select customer_id, invoice_no, gross_value, net_value, invoice_at, canceled_at
    from {{ ref('int_sales_lines__returns_dated') }}

),

segment_map as (

    select * from {{ ref('rfm_segment_map') }}

),

strategies as (

    select * from {{ ref('rfm_segment_strategies') }}

),

{% if is_incremental() %}
stored_dates as (

    select distinct rfm_as_of from {{ this }}

),
{% endif %}

as_of as (

    -- the build's date and, on an incremental run, every date already stored: each is computed
    -- again from the current lines
    select {{ timestamp_var('rfm_as_of') }} as rfm_as_of
    {%- if is_incremental() %}
    union
    select rfm_as_of from stored_dates
    {%- endif %}

),

purchases_before_as_of as (

    select
        lines.customer_id,
        lines.invoice_no,
        lines.invoice_at,
        as_of.rfm_as_of,
        {{ value_known_at('as_of.rfm_as_of', 'lines') }} as value_known_at_as_of
    from lines
    cross join as_of
    where lines.invoice_at < as_of.rfm_as_of

),

per_customer as (

    select
        customer_id,
        rfm_as_of,
        max(invoice_at) as last_purchase_at,
        count(distinct invoice_no) as frequency,
        {{ money_sum('value_known_at_as_of') }} as monetary
    from purchases_before_as_of
    group by customer_id, rfm_as_of

),

with_recency as (

    select
        *,
        cast(
            -- the macro renders one long line
            floor({{ dbt.datediff('last_purchase_at', 'rfm_as_of', 'second') }} / 86400.0)  -- noqa: LT05
            as integer
        ) as recency_days
    from per_customer

),

thresholds as (

    -- 95th percentiles over each date's customers, linear interpolation (pandas' default
    -- quantile)
    select
        rfm_as_of,
        {{ percentile_cont('frequency', 0.95) }} as frequency_p95,
        {{ percentile_cont('monetary', 0.95) }} as monetary_p95
    from with_recency
    group by rfm_as_of

),

scored as (

    select
        *,
        ntile(5) over (
            partition by rfm_as_of order by recency_days desc, customer_id asc
        ) as r_score,
        ntile(5) over (partition by rfm_as_of order by frequency, customer_id) as f_score,
        ntile(5) over (partition by rfm_as_of order by monetary, customer_id) as m_score
    from with_recency

),

final as (

    select
        -- ids
        scored.customer_id,

        -- numerics
        scored.recency_days,
        cast(scored.frequency as integer) as frequency,
        scored.monetary,

        -- scores and segment
        cast(scored.r_score as integer) as r_score,
        cast(scored.f_score as integer) as f_score,
        cast(scored.m_score as integer) as m_score,
        cast(scored.r_score as string) || cast(scored.f_score as string)
        || cast(scored.m_score as string) as rfm_cell,
        segment_map.rfm_segment,
        strategies.strategy as rfm_strategy,

        -- outliers
        scored.frequency > thresholds.frequency_p95
        or scored.monetary > thresholds.monetary_p95 as is_outlier,

        -- timestamps
        scored.last_purchase_at,
        scored.rfm_as_of

    from scored
    inner join thresholds
        on scored.rfm_as_of = thresholds.rfm_as_of
    inner join segment_map
        on scored.r_score = segment_map.r_score
        and scored.f_score = segment_map.f_score
    inner join strategies
        on segment_map.rfm_segment = strategies.rfm_segment

)

select * from final

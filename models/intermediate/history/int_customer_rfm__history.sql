{#-
  RFM per customer at every as-of date computed so far: the one home of the RFM query. Each run
  computes the RFM as of var('rfm_as_of') (midnight; only purchases strictly before it count)
  and replaces that date's rows (delete+insert on rfm_as_of), leaving the other dates as they
  were. marts.customer_rfm is this model's rows at the build's var('rfm_as_of');
  `python -m retail_segments backfill` runs this model once per month end with
  --vars '{rfm_as_of: ...}' to fill the segment history. Re-running a date rewrites the same rows,
  so a backfill run twice changes nothing. `dbt build --full-refresh` starts afresh.

  recency_days = whole days from the last purchase to the as-of moment; frequency = distinct
  invoices; monetary = the lines' value as known at the as-of moment: total_price when the return
  that cancels part of a line was made before it, else the line's gross value
  (int_sales_lines__returns_dated), so a month end backfilled later reads the same revenue as a
  build on that day did. At the build's own as-of date, after the last line, that is total_price.
  Scores 1-5 are quintiles by ntile(5); ties are broken
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

as_of as (

    select {{ timestamp_var('rfm_as_of') }} as rfm_as_of

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

    -- 95th percentiles over all customers, linear interpolation (pandas' default quantile)
    select
        {{ percentile_cont('frequency', 0.95) }} as frequency_p95,
        {{ percentile_cont('monetary', 0.95) }} as monetary_p95
    from with_recency

),

scored as (

    select
        *,
        ntile(5) over (order by recency_days desc, customer_id asc) as r_score,
        ntile(5) over (order by frequency, customer_id) as f_score,
        ntile(5) over (order by monetary, customer_id) as m_score
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
    cross join thresholds
    inner join segment_map
        on scored.r_score = segment_map.r_score
        and scored.f_score = segment_map.f_score
    inner join strategies
        on segment_map.rfm_segment = strategies.rfm_segment

)

select * from final

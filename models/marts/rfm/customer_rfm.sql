{#-
  RFM per customer as of var('rfm_as_of'): the rows of that date in int_customer_rfm__history,
  where the RFM query lives (it also holds the backfilled month ends of the segment history).
-#}
with

rfm_history as (

    select * from {{ ref('int_customer_rfm__history') }}

),

final as (

    select
        -- ids
        customer_id,

        -- numerics
        recency_days,
        frequency,
        monetary,

        -- scores and segment
        r_score,
        f_score,
        m_score,
        rfm_cell,
        rfm_segment,
        rfm_strategy,

        -- outliers
        is_outlier,

        -- timestamps
        last_purchase_at,
        rfm_as_of

    from rfm_history
    where rfm_as_of = {{ timestamp_var('rfm_as_of') }}

)

select * from final

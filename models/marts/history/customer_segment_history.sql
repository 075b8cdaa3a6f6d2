{#-
  The segment history BI reads: one row per customer and as-of date of int_customer_rfm__history
  (R, F, M, scores and RFM segment as of that date) with the part II segment the registry's
  current classifier predicts for it (ml_customer_segment_history_scores). Every date is scored
  by the same classifier, so a segment name means the same thing in every month.
-#}
with

rfm_history as (

    select * from {{ ref('int_customer_rfm__history') }}

),

scores as (

    select * from {{ ref('ml_customer_segment_history_scores') }}

),

final as (

    select
        -- ids
        rfm_history.customer_id,
        rfm_history.rfm_as_of,

        -- rfm
        rfm_history.recency_days,
        rfm_history.frequency,
        rfm_history.monetary,
        rfm_history.r_score,
        rfm_history.f_score,
        rfm_history.m_score,
        rfm_history.rfm_segment,
        rfm_history.is_outlier,

        -- segment
        cast(scores.segment_name as string) as segment_name,
        cast(scores.model_version as string) as model_version,

        -- timestamps
        rfm_history.last_purchase_at

    from rfm_history
    left join scores
        on rfm_history.customer_id = scores.customer_id
        and rfm_history.rfm_as_of = scores.rfm_as_of

)

select * from final

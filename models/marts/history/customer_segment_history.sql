{#-
  The segment history BI reads: one row per customer and as-of date of int_customer_rfm__history
  (R, F, M, scores and RFM segment as of that date) with the part II segment the registry's
  current classifier predicts for it (ml_customer_segment_history_scores). Every date is scored
  by the same classifier, so a segment name means the same thing in every month: segment_name is
  the column to compare dates with. current_segment_name is the customer's segment now, the one
  marts.customer_segments holds (ml_customer_segment_scores: the t-SNE cluster for clustered
  customers), the column to act on; at the build's own date the two differ only for clustered
  customers the classifier places in another segment than their cluster.
  Only dates up to the current marts' as-of date (marts.customer_rfm) are shown: a build as of an
  earlier date than a stored one keeps the later rows in the RFM history, which the marts of that
  build must not mix with its own date.
-#}
with

rfm_history as (

    select * from {{ ref('int_customer_rfm__history') }}

),

current_as_of as (

    select max(rfm_as_of) as rfm_as_of from {{ ref('customer_rfm') }}

),

shown_history as (

    select rfm_history.*
    from rfm_history
    inner join current_as_of on rfm_history.rfm_as_of <= current_as_of.rfm_as_of

),

scores as (

    select * from {{ ref('ml_customer_segment_history_scores') }}

),

current_segments as (

    -- the segment of marts.customer_segments (which reads the same scores)
    select customer_id, segment_name
    from {{ ref('ml_customer_segment_scores') }}

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
        cast(current_segments.segment_name as string) as current_segment_name,
        cast(scores.model_version as string) as model_version,

        -- timestamps
        rfm_history.last_purchase_at

    from shown_history as rfm_history
    left join scores
        on rfm_history.customer_id = scores.customer_id
        and rfm_history.rfm_as_of = scores.rfm_as_of
    left join current_segments
        on rfm_history.customer_id = current_segments.customer_id

)

select * from final

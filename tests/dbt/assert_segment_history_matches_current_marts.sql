-- The segment history and the current marts cannot drift apart. At the as-of date of
-- marts.customer_rfm the history holds exactly the same customers with the same RFM (both read
-- int_customer_rfm__history, customer_rfm its rows of that date), every history row was scored by
-- the current classifier (the version marts.customer_segments uses), and every customer that
-- customer_segments classified has the same segment in the history. A clustered customer keeps
-- their cluster in customer_segments while the history holds the classifier's prediction: the
-- two differ exactly where the classifier misses the cluster, so for every customer the
-- classifier was trained or tested on, the history holds its prediction and customer_segments
-- the cluster. Every history row carries the customer's segment now (current_segment_name) as
-- customer_segments has it.
with

rfm as (

    select * from {{ ref('customer_rfm') }}

),

segments as (

    select * from {{ ref('customer_segments') }}

),

history as (

    select * from {{ ref('customer_segment_history') }}

),

predictions as (

    select * from {{ ref('ml_classifier_predictions') }}

),

rfm_history as (

    select * from {{ ref('int_customer_rfm__history') }}

),

current_slice as (

    select rfm_history.*
    from rfm_history
    where rfm_history.rfm_as_of = (select max(rfm.rfm_as_of) from rfm)

),

rfm_differences as (

    select
        'rfm differs from customer_rfm' as problem,
        coalesce(rfm.customer_id, current_slice.customer_id) as customer_id
    from rfm
    full outer join current_slice on rfm.customer_id = current_slice.customer_id
    where rfm.customer_id is null
        or current_slice.customer_id is null
        or rfm.recency_days <> current_slice.recency_days
        or rfm.frequency <> current_slice.frequency
        or abs(rfm.monetary - current_slice.monetary) > 1e-9 * greatest(1, abs(rfm.monetary))
        or rfm.r_score <> current_slice.r_score
        or rfm.f_score <> current_slice.f_score
        or rfm.m_score <> current_slice.m_score
        or rfm.rfm_cell <> current_slice.rfm_cell
        or rfm.rfm_segment <> current_slice.rfm_segment
        or rfm.rfm_strategy <> current_slice.rfm_strategy
        or rfm.is_outlier <> current_slice.is_outlier
        or rfm.last_purchase_at <> current_slice.last_purchase_at

),

stale_versions as (

    select 'scored by another classifier than customer_segments' as problem, history.customer_id
    from history
    where history.model_version not in (select segments.model_version from segments)

),

segment_differences as (

    select 'classified segment differs from customer_segments' as problem, segments.customer_id
    from segments
    inner join history
        on segments.customer_id = history.customer_id
        and segments.rfm_as_of = history.rfm_as_of
    where segments.assignment_method = 'classified'
        and history.segment_name <> segments.segment_name

),

clustered_differences as (

    select
        'clustered segment differs from the classifier split prediction' as problem,
        segments.customer_id
    from segments
    inner join history
        on segments.customer_id = history.customer_id
        and segments.rfm_as_of = history.rfm_as_of
    inner join predictions on segments.customer_id = predictions.customer_id
    where segments.assignment_method <> 'clustered'
        or segments.segment_name <> predictions.actual_segment
        or history.segment_name <> predictions.predicted_segment

),

current_differences as (

    select 'current_segment_name differs from customer_segments' as problem, history.customer_id
    from history
    left join segments on history.customer_id = segments.customer_id
    where history.current_segment_name is distinct from segments.segment_name

),

final as (

    select * from rfm_differences
    union all
    select * from stale_versions
    union all
    select * from segment_differences
    union all
    select * from clustered_differences
    union all
    select * from current_differences

)

select * from final

-- Every customer of customer_rfm appears exactly once in customer_segments with a segment, and
-- every outlier was classified (outliers are never clustered).
with

rfm as (

    select customer_id, is_outlier from {{ ref('customer_rfm') }}

),

segments as (

    select * from {{ ref('customer_segments') }}

),

counted as (

    select
        rfm.customer_id, rfm.is_outlier, count(segments.customer_id) as n_rows,
        max(segments.segment_name) as segment_name,
        max(segments.assignment_method) as assignment_method
    from rfm
    left join segments on rfm.customer_id = segments.customer_id
    group by rfm.customer_id, rfm.is_outlier

),

final as (

    select *
    from counted
    where n_rows <> 1
        or segment_name is null
        or (is_outlier and assignment_method <> 'classified')

)

select * from final

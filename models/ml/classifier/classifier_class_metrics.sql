with

fit as (

    select * from {{ ref('ml_segment_classifier_fit') }}
    where result_table = 'classifier_class_metrics'

),

final as (

    select
        cast(model as varchar) as model,
        cast(segment_name as varchar) as segment_name,
        cast(precision as double) as precision,
        cast(recall as double) as recall,
        cast(f1 as double) as f1,
        cast(support as integer) as support
    from fit

)

select * from final

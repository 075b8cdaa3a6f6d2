with

fit as (

    select * from {{ ref('ml_segment_classifier_fit') }}
    where result_table = 'classifier_confusion_matrix'

),

final as (

    select
        cast(actual_segment as varchar) as actual_segment,
        cast(predicted_segment as varchar) as predicted_segment,
        cast(n_customers as integer) as n_customers
    from fit

)

select * from final

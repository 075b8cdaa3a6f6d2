{#-
  The selected classifier's confusion matrix on the test split in long form: every (actual,
  predicted) pair of the segments it was trained or tested on, zero cells included, as
  scikit-learn's confusion_matrix(labels=those segments) counts them.
-#}
with

predictions as (

    select * from {{ ref('ml_classifier_predictions') }}

),

segments as (

    select distinct actual_segment as segment_name
    from predictions

),

cells as (

    select
        actual_segment,
        predicted_segment,
        count(*) as n_customers
    from predictions
    where split = 'test'
    group by actual_segment, predicted_segment

),

final as (

    select
        actual.segment_name as actual_segment,
        predicted.segment_name as predicted_segment,
        cast(coalesce(cells.n_customers, 0) as integer) as n_customers
    from segments as actual
    cross join segments as predicted
    left join cells
        on actual.segment_name = cells.actual_segment
        and predicted.segment_name = cells.predicted_segment

)

select * from final

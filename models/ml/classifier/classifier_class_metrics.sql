{#-
  Per-segment precision, recall, F1 and support of the selected classifier on the test split,
  as scikit-learn's precision_recall_fscore_support(labels=every segment trained or tested on,
  zero_division=0) computes them: precision = true positives / predicted, recall = true positives
  / support, F1 = 2 * true positives / (support + predicted), each 0 where its denominator is 0.
-#}
with

predictions as (

    select * from {{ ref('ml_classifier_predictions') }}

),

fits as (

    select model from {{ ref('ml_segment_classifier_fit') }}

),

segments as (

    select distinct actual_segment as segment_name
    from predictions

),

test_split as (

    select actual_segment, predicted_segment
    from predictions
    where split = 'test'

),

actual_counts as (

    select
        actual_segment as segment_name,
        count(*) as n_actual,
        sum(case when predicted_segment = actual_segment then 1 else 0 end) as n_true_positive
    from test_split
    group by actual_segment

),

predicted_counts as (

    select
        predicted_segment as segment_name,
        count(*) as n_predicted
    from test_split
    group by predicted_segment

),

counts as (

    select
        segments.segment_name,
        coalesce(actual_counts.n_true_positive, 0) as n_true_positive,
        coalesce(actual_counts.n_actual, 0) as n_actual,
        coalesce(predicted_counts.n_predicted, 0) as n_predicted
    from segments
    left join actual_counts on segments.segment_name = actual_counts.segment_name
    left join predicted_counts on segments.segment_name = predicted_counts.segment_name

),

final as (

    select
        fits.model,
        counts.segment_name,
        case
            when counts.n_predicted = 0 then 0.0
            else cast(counts.n_true_positive as double) / cast(counts.n_predicted as double)
        -- precision and support are scikit-learn's names, published
        end as precision,  -- noqa: RF04
        case
            when counts.n_actual = 0 then 0.0
            else cast(counts.n_true_positive as double) / cast(counts.n_actual as double)
        end as recall,
        case
            when counts.n_actual + counts.n_predicted = 0 then 0.0
            else 2 * cast(counts.n_true_positive as double)
                / cast(counts.n_actual + counts.n_predicted as double)
        end as f1,
        cast(counts.n_actual as integer) as support  -- noqa: RF04
    from counts
    cross join fits

)

select * from final

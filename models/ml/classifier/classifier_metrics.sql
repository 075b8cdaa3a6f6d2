{#- fit_seconds stays in the Python model's output: wall-clock time would make this table differ
    between identical builds. The selected model's training time is in ml.model_registry. -#}
with

fit as (

    select * from {{ ref('ml_segment_classifier_fit') }}
    where result_table = 'classifier_metrics'

),

final as (

    select
        cast(model as varchar) as model,
        cast(best_params as varchar) as best_params,
        cast(cv_accuracy as double) as cv_accuracy,
        cast(test_accuracy as double) as test_accuracy,
        cast(n_train as integer) as n_train,
        cast(n_test as integer) as n_test,
        cast(is_selected as boolean) as is_selected,
        cast(search as varchar) as search
    from fit

)

select * from final

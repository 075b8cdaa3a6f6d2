{#- fit_seconds stays in the fit's candidates: wall-clock time would make this table differ
    between identical builds. The selected model's training time is in ml.model_registry. -#}
with

candidates as (

    select * from {{ fit_result('ml_segment_classifier_fit', 'candidates') }}

),

final as (

    select * from candidates

)

select * from final

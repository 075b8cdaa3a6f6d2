{#- One row per model (the fitted models, the naive baseline) and target of the holdout. -#}
with

evaluation as (

    select * from {{ fit_result('ml_customer_value_fit', 'evaluation') }}

),

final as (

    select * from evaluation

)

select * from final

{#- One row per fitted customer value model and purpose (production or calibration). -#}
with

fitted as (

    select * from {{ fit_result('ml_customer_value_fit', 'models') }}

),

final as (

    select * from fitted

)

select * from final

{#-
  What each customer is worth from here on, as of var('rfm_as_of'): the production fit's
  per-customer predictions (ml_customer_value_fit, BG/NBD and Gamma-Gamma).
-#}
with

predicted as (

    select * from {{ fit_result('ml_customer_value_fit', 'customers') }}

),

final as (

    select * from predicted

)

select * from final

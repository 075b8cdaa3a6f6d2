{#-
  What each customer is worth from here on, as of var('rfm_as_of'): the production fit's
  per-customer predictions (ml_customer_value_scores: the production BG/NBD and Gamma-Gamma
  models of ml.clv_model applied to each customer).
-#}
with

predicted as (

    select * from {{ ref('ml_customer_value_scores') }}

),

final as (

    select
        customer_id,
        expected_purchases_90d,
        prob_no_purchase_90d,
        expected_order_value,
        clv_12m,
        rfm_as_of
    from predicted

)

select * from final

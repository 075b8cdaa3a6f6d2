-- The interest clustering was fitted on exactly the customers whose first purchase is before
-- var('new_customer_cutoff'), and the classifier on first orders of those customers only, all
-- before the cutoff; new customers (first purchase on or after it) appear only as scored.
-- Returns each offending customer with the reason.
with

customers as (

    select
        customer_id, first_purchase_at >= {{ timestamp_var('new_customer_cutoff') }}
            as is_new_customer
    from {{ ref('dim_customers') }}

),

fitted as (

    select customer_id from {{ ref('ml_customer_interest_training_assignments') }}

),

training_windows as (

    select customer_id, feature_window, invoice_at
    from {{ ref('int_customer_interest__window_orders') }}
    where not is_new_customer and feature_window in ('before_cutoff', 'first_orders')

),

predicted as (

    select distinct customer_id from {{ ref('new_customer_predictions') }}

),

final as (

    select customers.customer_id, 'customer of the training period missing from the fit' as reason
    from customers
    left join fitted on customers.customer_id = fitted.customer_id
    where not customers.is_new_customer and fitted.customer_id is null

    union all

    select fitted.customer_id, 'new customer in the fit' as reason
    from fitted
    inner join customers on fitted.customer_id = customers.customer_id
    where customers.is_new_customer

    union all

    select customer_id, 'training window holds an order on or after the cutoff' as reason
    from training_windows
    where invoice_at >= {{ timestamp_var('new_customer_cutoff') }}

    union all

    select predicted.customer_id, 'prediction for a customer of the training period' as reason
    from predicted
    inner join customers on predicted.customer_id = customers.customer_id
    where not customers.is_new_customer

)

select * from final

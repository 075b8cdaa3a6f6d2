with

customers as (

    select *
    from {{ fit_result('ml_customer_interest_fit', 'customers', columns=[
        'customer_id', 'interest_category', 'is_fit_sample'
    ]) }}

),

categories as (

    select *
    from {{ fit_result('ml_customer_interest_fit', 'categories', columns=[
        'interest_category', 'interest_name'
    ]) }}

),

baskets as (

    select * from {{ ref('int_customer_interest__baskets') }}
    where feature_window = 'whole_history'

),

final as (

    select
        -- ids
        customers.customer_id,
        customers.interest_category,

        -- descriptive
        categories.interest_name,
        cast(case when baskets.is_new_customer then 'scored' else 'clustered' end as string)
            as assignment_method,
        baskets.is_new_customer,
        customers.is_fit_sample,

        -- numerics
        baskets.n_orders,
        baskets.total_spend,

        -- timestamps
        baskets.first_order_at as first_purchase_at

    from customers
    inner join baskets on customers.customer_id = baskets.customer_id
    left join categories on customers.interest_category = categories.interest_category

)

select * from final

{#-
  Which orders make up each feature window of each customer (see the yml for the windows).
  Basket values are gross (unit_price * quantity, before returns): a line's value is known when it
  is bought, so returns booked later cannot leak into a window.
-#}
{%- set cutoff = timestamp_var('new_customer_cutoff') -%}
with

lines as (

    select customer_id, invoice_no, invoice_at, unit_price, quantity
    from {{ ref('fct_sales_lines') }}

),

orders_seen_values as (

    {{ dbt.generate_series(integer_var('new_customer_max_orders') | int) }}

),

orders as (

    select
        customer_id,
        invoice_no,
        min(invoice_at) as invoice_at,
        {{ money_sum("unit_price * quantity") }} as basket_value
    from lines
    group by customer_id, invoice_no

),

numbered as (

    select
        orders.customer_id,
        orders.invoice_no,
        orders.invoice_at,
        orders.basket_value,
        row_number() over (
            partition by orders.customer_id order by orders.invoice_at, orders.invoice_no
        ) as order_number,
        -- the customer's first purchase is their first order (dim_customers says the same)
        min(orders.invoice_at) over (partition by orders.customer_id) >= {{ cutoff }}
            as is_new_customer,
        orders.invoice_at < {{ cutoff }} as is_before_cutoff
    from orders

),

before_cutoff as (

    -- the clustering's training data: customers of the training period, orders before the cutoff
    select
        numbered.*,
        'before_cutoff' as feature_window,
        count(*) over (partition by numbered.customer_id) as orders_seen
    from numbered
    where not numbered.is_new_customer and numbered.is_before_cutoff

),

whole_history as (

    select
        numbered.*,
        'whole_history' as feature_window,
        count(*) over (partition by numbered.customer_id) as orders_seen
    from numbered

),

first_orders_candidates as (

    -- the first n orders; for customers of the training period only orders before the cutoff
    select
        numbered.*,
        'first_orders' as feature_window,
        cast(orders_seen_values.generated_number as integer) as orders_seen,
        count(*) over (
            partition by numbered.customer_id, orders_seen_values.generated_number
        ) as n_orders_in_window
    from numbered
    cross join orders_seen_values
    where numbered.order_number <= orders_seen_values.generated_number
        and (numbered.is_new_customer or numbered.is_before_cutoff)

),

first_orders as (

    -- keep a window only when the customer really has that many orders in it
    select
        customer_id, invoice_no, invoice_at, basket_value, order_number, is_new_customer,
        is_before_cutoff, feature_window, orders_seen
    from first_orders_candidates
    where n_orders_in_window = orders_seen

),

windows as (

    select * from before_cutoff
    union all
    select * from whole_history
    union all
    select * from first_orders

),

final as (

    select
        -- ids
        cast(customer_id as integer) as customer_id,
        cast(feature_window as string) as feature_window,
        cast(orders_seen as integer) as orders_seen,
        cast(invoice_no as string) as invoice_no,

        -- descriptive
        is_new_customer,
        is_before_cutoff,

        -- numerics
        cast(order_number as integer) as order_number,
        basket_value,

        -- timestamps
        invoice_at

    from windows

)

select * from final

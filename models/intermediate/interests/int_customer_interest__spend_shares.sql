with

window_orders as (

    select customer_id, feature_window, orders_seen, invoice_no
    from {{ ref('int_customer_interest__window_orders') }}

),

lines as (

    select invoice_no, stock_code, unit_price, quantity from {{ ref('fct_sales_lines') }}

),

assignments as (

    select stock_code, product_category from {{ ref('product_category_assignments') }}

),

category_spend as (

    select
        window_orders.customer_id,
        window_orders.feature_window,
        window_orders.orders_seen,
        assignments.product_category,
        -- exact decimal sums: a float sum depends on the order rows arrive in, and the shares
        -- feed the clustering
        {{ money_sum('lines.unit_price * lines.quantity') }} as spend
    from window_orders
    inner join lines on window_orders.invoice_no = lines.invoice_no
    inner join assignments on lines.stock_code = assignments.stock_code
    group by
        window_orders.customer_id,
        window_orders.feature_window,
        window_orders.orders_seen,
        assignments.product_category

),

final as (

    select
        -- ids
        customer_id,
        feature_window,
        orders_seen,
        product_category,

        -- numerics
        spend,
        spend / {{ money_sum('spend', '(partition by customer_id, feature_window, orders_seen)') }}
            as spend_share

    from category_spend

)

select * from final

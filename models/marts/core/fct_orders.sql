with

lines as (

    select * from {{ ref('fct_sales_lines') }}

),

aggregated as (

    select
        invoice_no,
        min(customer_id) as customer_id,
        min(country) as country,
        min(invoice_at) as invoice_at,
        count(*) as n_lines,
        count(distinct stock_code) as n_products,
        sum(quantity) as quantity,
        sum(quantity_canceled) as quantity_canceled,
        {{ money_sum('total_price') }} as order_value
    from lines
    group by invoice_no

),

final as (

    select
        -- ids
        invoice_no,
        customer_id,

        -- descriptive
        country,

        -- numerics
        cast(n_lines as integer) as n_lines,
        cast(n_products as integer) as n_products,
        cast(quantity as bigint) as quantity,
        cast(quantity_canceled as bigint) as quantity_canceled,
        order_value,

        -- timestamps
        invoice_at

    from aggregated

)

select * from final

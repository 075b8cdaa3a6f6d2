-- fct_orders takes one customer and one country per invoice; the cleaned lines must agree.
with

lines as (

    select * from {{ ref('fct_sales_lines') }}

),

final as (

    select
        invoice_no,
        count(distinct customer_id) as n_customers,
        count(distinct country) as n_countries
    from lines
    group by invoice_no
    having count(distinct customer_id) > 1 or count(distinct country) > 1

)

select * from final

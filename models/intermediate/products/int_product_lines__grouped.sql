{#-
  The cleaned sales lines grouped before they reach the product categorisation (Python), which
  needs only these keys and counts: pandas then holds one row per product variant and side of the
  cutoff instead of one per sales line. Lines strictly before var('new_customer_cutoff') train the
  categories.
-#}
{%- set cutoff = timestamp_var('new_customer_cutoff') -%}
with

lines as (

    select stock_code, description, unit_price, invoice_at
    from {{ ref('fct_sales_lines') }}

),

split as (

    select
        stock_code,
        description,
        unit_price,
        invoice_at,
        invoice_at < {{ cutoff }} as is_before_cutoff
    from lines

),

final as (

    select
        -- ids
        stock_code,
        description,
        unit_price,
        is_before_cutoff,

        -- numerics
        count(*) as n_lines,

        -- timestamps
        min(invoice_at) as first_invoice_at,
        max(invoice_at) as last_invoice_at

    from split
    group by stock_code, description, unit_price, is_before_cutoff

)

select * from final

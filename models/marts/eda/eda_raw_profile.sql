{#-
  A profile of the raw file as loaded: one row. Reads the screened lines, which hold every raw
  line once (same grain as staging) without scanning the CSV again.
-#}
with

lines as (

    select * from {{ ref('int_sales_lines__screened') }}

),

exact_duplicates as (

    -- every copy beyond the first of a fully identical line, with or without a customer id
    select sum(case when is_exact_duplicate then 1 else 0 end) as n_duplicate_lines
    from lines

),

profile as (

    select
        count(*) as n_rows,
        sum(case when invoice_no is null then 1 else 0 end) as n_null_invoice_no,
        sum(case when stock_code is null then 1 else 0 end) as n_null_stock_code,
        sum(case when description is null then 1 else 0 end) as n_null_description,
        sum(case when quantity is null then 1 else 0 end) as n_null_quantity,
        sum(case when invoice_at is null then 1 else 0 end) as n_null_invoice_at,
        sum(case when unit_price is null then 1 else 0 end) as n_null_unit_price,
        sum(case when customer_id is null then 1 else 0 end) as n_null_customer_id,
        sum(case when country is null then 1 else 0 end) as n_null_country,
        min(invoice_at) as first_invoice_at,
        max(invoice_at) as last_invoice_at,
        count(distinct customer_id) as n_customers,
        count(distinct invoice_no) as n_invoices,
        count(distinct stock_code) as n_stock_codes,
        count(distinct country) as n_countries,
        sum(case when is_cancellation then 1 else 0 end) as n_cancellation_lines
    from lines

),

final as (

    select
        cast(profile.n_rows as bigint) as n_rows,
        cast(profile.n_null_invoice_no as bigint) as n_null_invoice_no,
        cast(profile.n_null_stock_code as bigint) as n_null_stock_code,
        cast(profile.n_null_description as bigint) as n_null_description,
        cast(profile.n_null_quantity as bigint) as n_null_quantity,
        cast(profile.n_null_invoice_at as bigint) as n_null_invoice_at,
        cast(profile.n_null_unit_price as bigint) as n_null_unit_price,
        cast(profile.n_null_customer_id as bigint) as n_null_customer_id,
        cast(profile.n_null_country as bigint) as n_null_country,
        profile.first_invoice_at,
        profile.last_invoice_at,
        cast(profile.n_customers as bigint) as n_customers,
        cast(profile.n_invoices as bigint) as n_invoices,
        cast(profile.n_stock_codes as bigint) as n_stock_codes,
        cast(profile.n_countries as bigint) as n_countries,
        cast(profile.n_cancellation_lines as bigint) as n_cancellation_lines,
        cast(exact_duplicates.n_duplicate_lines as bigint) as n_duplicate_lines
    from profile
    cross join exact_duplicates

)

select * from final

{#-
  Applies the study's line-level cleaning rules in order and records, for every raw line, the first
  step that removes it (removal_step). Step 3 (cancellation matching) removes nothing; it lives in
  int_sales_lines__cancellations_matched.
-#}
with

lines as (

    select * from {{ ref('stg_online_retail__lines') }}

),

flag_missing_customer as (

    -- step 1: lines without a customer id
    select
        *,
        customer_id is null as is_missing_customer
    from lines

),

flag_duplicates as (

    -- step 2: exact duplicates (all eight source columns equal), the first in file order is kept
    select
        *,
        row_number() over (
            partition by
                invoice_no, stock_code, description, quantity,
                invoice_at, unit_price, customer_id, country
            order by source_row_number
        ) > 1 as is_exact_duplicate
    from flag_missing_customer

),

flag_rules as (

    select
        *,
        quantity < 0 as is_return,
        {{ is_service_stock_code('stock_code') }} as is_service,
        unit_price = 0 as is_zero_price
    from flag_duplicates

),

final as (

    select
        -- ids
        source_row_number,
        invoice_no,
        stock_code,
        customer_id,

        -- descriptive
        description,
        country,

        -- numerics
        quantity,
        unit_price,

        -- timestamps
        invoice_at,

        -- cleaning
        is_cancellation,
        is_exact_duplicate,
        is_return,
        case
            when is_missing_customer then 1
            when is_exact_duplicate then 2
            when is_return then 4
            when is_service then 5
            when is_zero_price then 6
        end as removal_step

    from flag_rules

)

select * from final

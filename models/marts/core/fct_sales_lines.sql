{#-
  Incremental: a later build inserts the kept lines past what is loaded and re-writes the loaded
  purchase lines that a newly arrived return cancels (their quantity_canceled and total_price).
-#}
{{ config(
    materialized='incremental',
    unique_key='source_row_number',
    incremental_strategy='delete+insert',
    on_schema_change='fail'
) }}

with

screened as (

    select * from {{ ref('int_sales_lines__screened') }}

),

cancellations as (

    select * from {{ ref('int_sales_lines__cancellations_matched') }}

),

kept as (

    select screened.*
    from screened
    where screened.removal_step is null
    {% if is_incremental() %}
        and (
            screened.source_row_number
            > (select max(loaded.source_row_number) from {{ this }} as loaded)
            or screened.source_row_number in (
                select cancellations.source_row_number
                from cancellations
                where cancellations.canceled_by_row_number
                    > (select max(loaded.source_row_number) from {{ this }} as loaded)
            )
        )
    {% endif %}

),

joined as (

    select
        kept.*,
        coalesce(cancellations.quantity_canceled, 0) as quantity_canceled
    from kept
    left join cancellations
        on kept.source_row_number = cancellations.source_row_number

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
        cast(quantity_canceled as integer) as quantity_canceled,
        unit_price,
        unit_price * (quantity - quantity_canceled) as total_price,

        -- timestamps
        invoice_at

    from joined

)

select * from final

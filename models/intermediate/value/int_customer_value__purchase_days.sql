{#-
  The input of the customer value fits: each customer's spend per purchase day, split at the two
  cut-offs (var('rfm_as_of') for the production fit, var('clv_calibration_end') for the honest
  evaluation) so that a day is never partly on the wrong side of one. Spend is known as of each
  cut-off: returns made after it do not reduce it (int_sales_lines__returns_dated).
-#}
{%- set as_of = timestamp_var('rfm_as_of') -%}
{%- set calibration_end = timestamp_var('clv_calibration_end') -%}
with

lines as (

    select * from {{ ref('int_sales_lines__returns_dated') }}

),

valued as (

    select
        customer_id,
        invoice_at,
        net_value,
        {{ value_known_at(as_of) }} as value_known_at_rfm_as_of,
        {{ value_known_at(calibration_end) }} as value_known_at_calibration_end,
        invoice_at < {{ as_of }} as is_before_rfm_as_of,
        invoice_at < {{ calibration_end }} as is_before_calibration_end
    from lines

),

per_day as (

    select
        customer_id,
        cast(invoice_at as date) as purchase_date,
        is_before_rfm_as_of,
        is_before_calibration_end,
        min(invoice_at) as purchased_at,
        {{ money_sum('net_value') }} as spend,
        {{ money_sum('value_known_at_rfm_as_of') }} as spend_known_at_rfm_as_of,
        {{ money_sum('value_known_at_calibration_end') }} as spend_known_at_calibration_end
    from valued
    group by customer_id, cast(invoice_at as date), is_before_rfm_as_of, is_before_calibration_end

),

final as (

    select
        -- ids
        customer_id,
        purchase_date,

        -- flags
        is_before_rfm_as_of,
        is_before_calibration_end,

        -- numerics
        spend,
        spend_known_at_rfm_as_of,
        spend_known_at_calibration_end,

        -- timestamps
        purchased_at

    from per_day

)

select * from final

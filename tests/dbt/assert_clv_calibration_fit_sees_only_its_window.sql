-- No line on or after var('clv_calibration_end') reaches the calibration fit of the customer
-- value models: its BG/NBD fit counts exactly the customers with a purchase before the cut-off
-- (a leaked holdout line would add the holdout's new customers) and its data window ends there.
-- Returns one row per violation.
with

calibration as (

    select * from {{ ref('clv_model') }}
    where purpose = 'calibration' and model = 'bg_nbd'

),

customers_before as (

    select count(distinct customer_id) as n_customers
    from {{ ref('fct_sales_lines') }}
    where invoice_at < {{ timestamp_var('clv_calibration_end') }}

)

select
    calibration.purpose,
    calibration.model,
    calibration.n_customers,
    customers_before.n_customers as n_customers_before_calibration_end,
    calibration.data_window_end
from calibration
cross join customers_before
where calibration.n_customers <> customers_before.n_customers
    or calibration.data_window_end <> {{ timestamp_var('clv_calibration_end') }}

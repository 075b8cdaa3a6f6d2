-- The audit chains (each step's rows_in is the previous rows_out), starts at the raw line count
-- and ends at the row count of fct_sales_lines. Returns a row per broken link.
with

audit as (

    select * from {{ ref('cleaning_audit') }}

),

raw_lines as (

    select count(*) as n_rows from {{ ref('int_sales_lines__screened') }}

),

clean_lines as (

    select count(*) as n_rows from {{ ref('fct_sales_lines') }}

),

chain as (

    select
        step_number,
        rows_in,
        lag(rows_out) over (order by step_number) as previous_rows_out
    from audit

),

final as (

    select 'chain broken at step ' || cast(step_number as string) as problem
    from chain
    where previous_rows_out is not null and previous_rows_out <> rows_in

    union all

    select 'step 1 does not start from the raw line count'
    from audit
    cross join raw_lines
    where audit.step_number = 1 and audit.rows_in <> raw_lines.n_rows

    union all

    select 'step 6 does not end at the fct_sales_lines row count'
    from audit
    cross join clean_lines
    where audit.step_number = 6 and audit.rows_out <> clean_lines.n_rows

)

select * from final

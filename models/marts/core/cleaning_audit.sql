with

screened as (

    select * from {{ ref('int_sales_lines__screened') }}

),

cancellations as (

    select * from {{ ref('int_sales_lines__cancellations_matched') }}

),

steps as (

    select * from (
        values
        (1, 'drop lines without a customer id'),
        (2, 'drop exact duplicate lines (first in file order kept)'),
        (3, 'match returns to earlier purchases (sets quantity_canceled)'),
        (4, 'drop return lines (negative quantity)'),
        (5, 'drop service lines (stock code starts with a letter)'),
        (6, 'drop lines with a zero unit price')
    -- the alias names the values' columns
    ) as step_names (step_number, step_name)  -- noqa: AL05

),

removed_per_step as (

    select removal_step as step_number, count(*) as rows_removed
    from screened
    where removal_step is not null
    group by removal_step

),

raw_total as (

    select count(*) as n_raw_lines from screened

),

counted as (

    select
        steps.step_number,
        steps.step_name,
        coalesce(removed_per_step.rows_removed, 0) as rows_removed
    from steps
    left join removed_per_step on steps.step_number = removed_per_step.step_number

),

cumulative as (

    select
        counted.*,
        raw_total.n_raw_lines - coalesce(sum(counted.rows_removed) over (
            order by counted.step_number
            rows between unbounded preceding and 1 preceding
        ), 0) as rows_in
    from counted
    cross join raw_total

),

final as (

    select
        cast(step_number as integer) as step_number,
        cast(step_name as string) as step_name,
        cast(rows_in as bigint) as rows_in,
        cast(rows_removed as bigint) as rows_removed,
        cast(rows_in - rows_removed as bigint) as rows_out,
        cast(case
            when step_number = 3 then (select count(*) from cancellations)
            else 0
        end as bigint) as purchase_lines_canceled
    from cumulative

)

select * from final

{#-
  Segment migration between consecutive as-of dates of the segment history: how many customers,
  and how much revenue, moved from each state to each other state (or stayed). States, 'new' and
  'churned' are defined in int_customer_segment_transitions. Only observed moves have a row, and
  only between the dates marts.customer_segment_history shows (up to the current marts' as-of
  date).
-#}
with

all_transitions as (

    select * from {{ ref('int_customer_segment_transitions') }}

),

shown_dates as (

    select distinct rfm_as_of from {{ ref('customer_segment_history') }}

),

transitions as (

    select all_transitions.*
    from all_transitions
    inner join shown_dates on all_transitions.to_as_of = shown_dates.rfm_as_of

),

final as (

    select
        -- timestamps
        from_as_of,
        to_as_of,

        -- states
        from_segment,
        to_segment,

        -- numerics
        cast(count(*) as integer) as n_customers,
        {{ money_sum('monetary') }} as monetary,
        {{ money_sum('period_revenue') }} as period_revenue

    from transitions
    group by from_as_of, to_as_of, from_segment, to_segment

)

select * from final

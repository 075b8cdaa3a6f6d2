{#-
  One row per customer of the segment history: the state at the customer's latest as-of date and
  when it last changed. A change is a move between consecutive as-of dates from one state to a
  different one (int_customer_segment_transitions), including 'new' -> a segment when the
  customer first appears after the history's first date. Customers whose state never changed
  within the history have no last change (null). The history is marts.customer_segment_history:
  dates up to the current marts' as-of date, and so are the changes.
-#}
with

history as (

    select
        customer_id,
        rfm_as_of,
        segment_name,
        {{ segment_state('recency_days', 'segment_name') }} as segment_state
    from {{ ref('customer_segment_history') }}

),

all_transitions as (

    select * from {{ ref('int_customer_segment_transitions') }}

),

shown_dates as (

    select distinct rfm_as_of from history

),

transitions as (

    select all_transitions.*
    from all_transitions
    inner join shown_dates on all_transitions.to_as_of = shown_dates.rfm_as_of

),

customers as (

    select
        customer_id,
        min(rfm_as_of) as first_as_of,
        max(rfm_as_of) as latest_as_of
    from history
    group by customer_id

),

latest_states as (

    select history.customer_id, history.segment_name, history.segment_state
    from history
    inner join customers
        on history.customer_id = customers.customer_id
        and history.rfm_as_of = customers.latest_as_of

),

changes as (

    select
        customer_id,
        to_as_of,
        from_segment,
        row_number() over (partition by customer_id order by to_as_of desc) as change_rank,
        count(*) over (partition by customer_id) as n_changes
    from transitions
    where from_segment <> to_segment

),

last_changes as (

    select * from changes
    where change_rank = 1

),

final as (

    select
        -- ids
        customers.customer_id,

        -- states
        latest_states.segment_state,
        latest_states.segment_name,
        last_changes.from_segment as previous_segment,
        cast(coalesce(last_changes.n_changes, 0) as integer) as n_changes,

        -- timestamps
        last_changes.to_as_of as last_changed_at,
        customers.first_as_of,
        customers.latest_as_of

    from customers
    inner join latest_states on customers.customer_id = latest_states.customer_id
    left join last_changes on customers.customer_id = last_changes.customer_id

)

select * from final

-- Nothing is lost in the segment migration. For every pair of consecutive as-of dates:
-- the customers leaving each state (summed over to_segment) are exactly that state's customers at
-- from_as_of, and 'new' are exactly the customers at to_as_of who were not there at from_as_of;
-- the customers arriving in each state are exactly that state's customers at to_as_of; and the
-- lifetime revenue of the pair equals the history's revenue at to_as_of.
with

history as (

    select
        customer_id,
        rfm_as_of,
        monetary,
        {{ segment_state('recency_days', 'segment_name') }} as segment_state
    from {{ ref('customer_segment_history') }}

),

migration as (

    select * from {{ ref('segment_migration') }}

),

date_pairs as (

    select distinct from_as_of, to_as_of from migration

),

expected_from as (

    select date_pairs.to_as_of, history.segment_state as from_segment, count(*) as n_customers
    from date_pairs
    inner join history on date_pairs.from_as_of = history.rfm_as_of
    group by date_pairs.to_as_of, history.segment_state

    union all

    select date_pairs.to_as_of, 'new' as from_segment, count(*) as n_customers
    from date_pairs
    inner join history as later on date_pairs.to_as_of = later.rfm_as_of
    left join history as earlier
        on date_pairs.from_as_of = earlier.rfm_as_of
        and later.customer_id = earlier.customer_id
    where earlier.customer_id is null
    group by date_pairs.to_as_of

),

expected_to as (

    select
        date_pairs.to_as_of, history.segment_state as to_segment, count(*) as n_customers,
        sum(history.monetary) as monetary
    from date_pairs
    inner join history on date_pairs.to_as_of = history.rfm_as_of
    group by date_pairs.to_as_of, history.segment_state

),

actual_from as (

    select to_as_of, from_segment, sum(n_customers) as n_customers
    from migration
    group by to_as_of, from_segment

),

actual_to as (

    select to_as_of, to_segment, sum(n_customers) as n_customers, sum(monetary) as monetary
    from migration
    group by to_as_of, to_segment

),

from_differences as (

    select
        coalesce(expected_from.to_as_of, actual_from.to_as_of) as to_as_of,
        coalesce(expected_from.from_segment, actual_from.from_segment) as segment,
        'leaving' as side
    from expected_from
    full outer join actual_from
        on expected_from.to_as_of = actual_from.to_as_of
        and expected_from.from_segment = actual_from.from_segment
    where expected_from.n_customers is distinct from actual_from.n_customers

),

to_differences as (

    select
        coalesce(expected_to.to_as_of, actual_to.to_as_of) as to_as_of,
        coalesce(expected_to.to_segment, actual_to.to_segment) as segment,
        'arriving' as side
    from expected_to
    full outer join actual_to
        on expected_to.to_as_of = actual_to.to_as_of
        and expected_to.to_segment = actual_to.to_segment
    where expected_to.n_customers is distinct from actual_to.n_customers
        or abs(expected_to.monetary - actual_to.monetary)
        > 1e-6 * greatest(1, abs(expected_to.monetary))

),

final as (

    select * from from_differences
    union all
    select * from to_differences

)

select * from final

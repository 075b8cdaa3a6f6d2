{#-
  One row per customer and pair of consecutive as-of dates of the segment history (from_as_of, the
  date before to_as_of) for every customer present at either date: the customer's state at each
  of the two dates and their revenue. Reads the same two inputs as marts.customer_segment_history
  (RFM history and its scores), so the marts built on it stay downstream of the intermediate layer.
  State at a date (macro segment_state): 'churned' when the customer has not bought for
  var('history_churn_days') days or more (recency_days >= it), otherwise the part II segment. At from_as_of a customer not yet
  in the history (first purchase between the two dates) is 'new'; at to_as_of a customer no
  longer in it is 'churned' (cannot happen while the raw data only grows: once a customer has
  bought, they are in the RFM of every later date).
-#}
with

rfm_history as (

    select customer_id, rfm_as_of, recency_days, monetary
    from {{ ref('int_customer_rfm__history') }}

),

scores as (

    select customer_id, rfm_as_of, segment_name
    from {{ ref('ml_customer_segment_history_scores') }}

),

as_of_dates as (

    select distinct rfm_as_of from rfm_history

),

consecutive_dates as (

    select
        lag(rfm_as_of) over (order by rfm_as_of) as from_as_of,
        rfm_as_of as to_as_of
    from as_of_dates

),

date_pairs as (

    select * from consecutive_dates
    where from_as_of is not null

),

states as (

    select
        rfm_history.customer_id,
        rfm_history.rfm_as_of,
        rfm_history.monetary,
        {{ segment_state('rfm_history.recency_days', 'scores.segment_name') }} as segment_state
    from rfm_history
    inner join scores
        on rfm_history.customer_id = scores.customer_id
        and rfm_history.rfm_as_of = scores.rfm_as_of

),

from_states as (

    select
        date_pairs.from_as_of, date_pairs.to_as_of, states.customer_id, states.segment_state,
        states.monetary
    from date_pairs
    inner join states on date_pairs.from_as_of = states.rfm_as_of

),

to_states as (

    select
        date_pairs.from_as_of, date_pairs.to_as_of, states.customer_id, states.segment_state,
        states.monetary
    from date_pairs
    inner join states on date_pairs.to_as_of = states.rfm_as_of

),

paired as (

    select
        coalesce(from_states.customer_id, to_states.customer_id) as customer_id,
        coalesce(from_states.from_as_of, to_states.from_as_of) as from_as_of,
        coalesce(from_states.to_as_of, to_states.to_as_of) as to_as_of,
        from_states.segment_state as from_state,
        to_states.segment_state as to_state,
        from_states.monetary as from_monetary,
        to_states.monetary as to_monetary
    from from_states
    full outer join to_states
        on from_states.to_as_of = to_states.to_as_of
        and from_states.customer_id = to_states.customer_id

),

final as (

    select
        -- ids
        customer_id,

        -- timestamps
        from_as_of,
        to_as_of,

        -- states
        coalesce(from_state, 'new') as from_segment,
        coalesce(to_state, 'churned') as to_segment,

        -- revenue: lifetime revenue at to_as_of (the last known value for a customer no longer
        -- in the history) and the part of it bought between the two dates; rounded to 1e-6
        -- (prices have at most 3 decimals) so that two float sums over the same purchases give 0
        coalesce(to_monetary, from_monetary) as monetary,
        round(coalesce(to_monetary, from_monetary) - coalesce(from_monetary, 0), 6)
            as period_revenue

    from paired

)

select * from final

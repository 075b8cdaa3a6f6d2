{#-
  Cleaning step 3: which purchase line each return cancels. The study's rule, in set form:
  for each return line (negative quantity) the candidates are purchase lines (positive quantity)
  of the same customer and stock code with a strictly earlier invoice time;
    - no candidate: the return matches nothing;
    - exactly one: it matches that line, whatever its quantity;
    - several: it matches the latest candidate in file order whose quantity is at least the
      returned quantity (none qualifies: nothing).
  When several returns match the same purchase line, the latest return in file order wins
  (the value is overwritten, not added).
  Only lines that survive steps 1-2 (customer id present, not a duplicate) take part.
  Incremental: a later build matches only the returns past the last one that matched, against
  every loaded purchase, and replaces the rows of the purchases they land on (a later return
  overwrites, as in a full build). This assumes new lines are not dated before loaded returns;
  a backdated file needs `dbt build --full-refresh`.
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

eligible_lines as (

    select source_row_number, customer_id, stock_code, quantity, invoice_at
    from screened
    where removal_step is null or removal_step > 2

),

returns as (

    select
        source_row_number as return_row_number,
        customer_id,
        stock_code,
        invoice_at as returned_at,
        -quantity as quantity_returned
    from eligible_lines
    where quantity < 0
    {% if is_incremental() %}
        and source_row_number > (
            select coalesce(max(loaded.canceled_by_row_number), 0) from {{ this }} as loaded
        )
    {% endif %}

),

purchases as (

    select
        source_row_number as purchase_row_number,
        customer_id,
        stock_code,
        invoice_at as purchased_at,
        quantity as quantity_purchased
    from eligible_lines
    where quantity > 0

),

candidates as (

    select
        returns.return_row_number,
        returns.quantity_returned,
        purchases.purchase_row_number,
        purchases.quantity_purchased,
        count(*) over (partition by returns.return_row_number) as n_candidates
    from returns
    inner join purchases
        on returns.customer_id = purchases.customer_id
        and returns.stock_code = purchases.stock_code
        and returns.returned_at > purchases.purchased_at

),

qualifying as (

    select *
    from candidates
    where n_candidates = 1
        or quantity_purchased >= quantity_returned

),

ranked_per_return as (

    select
        *,
        row_number() over (
            partition by return_row_number
            order by purchase_row_number desc
        ) as rank_in_return
    from qualifying

),

matches as (

    select * from ranked_per_return
    where rank_in_return = 1

),

ranked_per_purchase as (

    select
        *,
        row_number() over (
            partition by purchase_row_number
            order by return_row_number desc
        ) as rank_in_purchase
    from matches

),

final as (

    select
        purchase_row_number as source_row_number,
        quantity_returned as quantity_canceled,
        return_row_number as canceled_by_row_number,
        n_candidates
    from ranked_per_purchase
    where rank_in_purchase = 1

)

select * from final

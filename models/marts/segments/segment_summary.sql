{#-
  One row per segmentation scheme and segment: size, revenue, R/F/M profile, average order value
  and strategy. Every scheme covers every customer of customer_segments once, so shares add up
  to 1 within a scheme:
    rfm_score          the RFM-score map (seed rfm_segment_map)
    pca_cluster        part I clusters; customers outside them (outliers, DBSCAN noise) are one
                       'not clustered' row
    tsne_segment       part II segments (clusters, or the classifier for everyone else)
    interest_category  the interest categories of ml.customer_interests
  Revenue and orders count purchases strictly before var('rfm_as_of'), as customer_rfm does; the
  value columns sum and average marts.customer_value over the segment's customers.
-#}
with

customers as (

    select * from {{ ref('customer_segments') }}

),

interests as (

    select customer_id, interest_category, interest_name
    from {{ ref('customer_interests') }}

),

interest_profiles as (

    select interest_category, spend_level, focus_product_category_label
    from {{ ref('customer_interest_profiles') }}

),

interest_strategies as (

    select * from {{ ref('interest_spend_strategies') }}

),

cluster_strategies as (

    select segment_name, strategy
    from {{ ref('cluster_profiles') }}
    where stage = 'pca'

),

orders as (

    select customer_id, order_value, invoice_at
    from {{ ref('fct_orders') }}

),

orders_per_customer as (

    -- the orders behind customer_rfm's frequency and monetary
    select
        customers.customer_id,
        count(*) as n_orders,
        {{ money_sum('orders.order_value') }} as order_revenue
    from customers
    inner join orders
        on customers.customer_id = orders.customer_id
        and customers.rfm_as_of > orders.invoice_at
    group by customers.customer_id

),

memberships as (

    select 'rfm_score' as scheme, customer_id, rfm_segment as segment_name, rfm_strategy as strategy
    from customers

    union all

    select
        'pca_cluster' as scheme,
        customers.customer_id,
        coalesce(customers.cluster_name, 'not clustered') as segment_name,
        coalesce(
            cluster_strategies.strategy,
            'Outside the part I clusters (an outlier or noise):'
            || ' follow the strategy of its part II segment.'
        ) as strategy
    from customers
    left join cluster_strategies on customers.cluster_name = cluster_strategies.segment_name

    union all

    select 'tsne_segment' as scheme, customer_id, segment_name, segment_strategy as strategy
    from customers

    union all

    select
        'interest_category' as scheme,
        interests.customer_id,
        interests.interest_name as segment_name,
        -- a category without a focus is named 'broad mix (...)' by interests.name_interests:
        -- its strongest lean is no range to lead with
        case
            when interests.interest_name like 'broad mix%'
                then
                    'No one range stands out (the strongest lean is '
                    || interest_profiles.focus_product_category_label
                    || '): lead with bestsellers across ranges. '
            else
                'Lead with their focus range ('
                || interest_profiles.focus_product_category_label
                || '). '
        end
        || interest_strategies.strategy as strategy
    from interests
    inner join customers on interests.customer_id = customers.customer_id
    inner join interest_profiles
        on interests.interest_category = interest_profiles.interest_category
    inner join interest_strategies
        on interest_profiles.spend_level = interest_strategies.spend_level

),

per_segment as (

    select
        memberships.scheme,
        memberships.segment_name,
        min(memberships.strategy) as strategy,
        count(*) as n_customers,
        sum(orders_per_customer.n_orders) as n_orders,
        {{ money_sum('customers.monetary') }} as revenue,
        {{ money_sum('orders_per_customer.order_revenue') }} as order_revenue,
        avg(customers.recency_days) as mean_recency_days,
        {{ percentile_cont('customers.recency_days', 0.5) }} as median_recency_days,
        avg(customers.frequency) as mean_frequency,
        {{ percentile_cont('customers.frequency', 0.5) }} as median_frequency,
        {{ exact_avg('customers.monetary') }} as mean_monetary,
        {{ percentile_cont('customers.monetary', 0.5) }} as median_monetary,
        {{ exact_sum('customers.clv_12m') }} as total_clv_12m,
        {{ exact_avg('customers.clv_12m') }} as mean_clv_12m,
        {{ exact_avg('customers.prob_no_purchase_90d') }} as mean_prob_no_purchase_90d
    from memberships
    inner join customers on memberships.customer_id = customers.customer_id
    inner join orders_per_customer on memberships.customer_id = orders_per_customer.customer_id
    group by memberships.scheme, memberships.segment_name

),

final as (

    select
        -- ids
        cast(scheme as string) as scheme,
        cast(segment_name as string) as segment_name,
        cast(
            row_number() over (
                partition by scheme order by revenue desc, segment_name asc
            ) as integer
        ) as segment_rank,

        -- size
        cast(n_customers as integer) as n_customers,
        n_customers / sum(n_customers) over (partition by scheme) as customer_share,
        cast(n_orders as integer) as n_orders,

        -- revenue
        revenue,
        revenue / {{ money_sum('revenue', '(partition by scheme)') }} as revenue_share,
        order_revenue / n_orders as avg_order_value,
        revenue / n_customers as revenue_per_customer,

        -- rfm profile
        mean_recency_days,
        cast(median_recency_days as double) as median_recency_days,
        mean_frequency,
        cast(median_frequency as double) as median_frequency,
        mean_monetary,
        cast(median_monetary as double) as median_monetary,

        -- value from here on (marts.customer_value)
        total_clv_12m,
        mean_clv_12m,
        mean_prob_no_purchase_90d,

        -- strategy
        cast(strategy as string) as strategy

    from per_segment

)

select * from final

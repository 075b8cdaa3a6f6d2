with

clusters as (

    select * from {{ ref('customer_interest_fit') }}
    where result_table = 'customer_interest_clusters'

),

fit_scores as (

    select customer_id, interest_category, is_fit_sample
    from {{ ref('customer_interest_fit') }}
    where result_table = 'customer_interest_scores' and feature_window = 'before_cutoff'

),

fit_baskets as (

    select * from {{ ref('customer_interest_baskets') }}
    where feature_window = 'before_cutoff'

),

product_categories as (

    select product_category, product_category_label from {{ ref('product_categories') }}

),

interests_now as (

    select interest_category, count(*) as n_customers
    from {{ ref('customer_interests') }}
    group by interest_category

),

fit_profile as (

    select
        fit_scores.interest_category,
        count(*) as n_customers,
        count(*) filter (where fit_scores.is_fit_sample) as n_fit_sample,
        avg(fit_baskets.n_orders) as mean_n_orders,
        avg(fit_baskets.mean_basket_value) as mean_basket_value,
        {{ percentile_cont('fit_baskets.total_spend', 0.5) }} as median_total_spend,
        sum(fit_baskets.total_spend) as total_spend
    from fit_scores
    inner join fit_baskets on fit_baskets.customer_id = fit_scores.customer_id
    group by fit_scores.interest_category

),

final as (

    select
        -- ids
        cast(clusters.interest_category as integer) as interest_category,

        -- descriptive
        cast(clusters.interest_name as varchar) as interest_name,
        cast(clusters.spend_level as varchar) as spend_level,
        cast(clusters.is_frequent as boolean) as is_frequent,
        cast(clusters.focus_product_category as integer) as focus_product_category,
        product_categories.product_category_label as focus_product_category_label,

        -- numerics
        cast(clusters.focus_lift as double) as focus_lift,
        cast(fit_profile.n_customers as integer) as n_customers_fit,
        fit_profile.n_customers / sum(fit_profile.n_customers) over () as customer_share_fit,
        cast(fit_profile.n_fit_sample as integer) as n_fit_sample,
        fit_profile.mean_n_orders,
        fit_profile.mean_basket_value,
        fit_profile.median_total_spend,
        fit_profile.total_spend / sum(fit_profile.total_spend) over () as spend_share_fit,
        cast(coalesce(interests_now.n_customers, 0) as integer) as n_customers_now

    from clusters
    inner join fit_profile on fit_profile.interest_category = clusters.interest_category
    left join product_categories
        on product_categories.product_category = clusters.focus_product_category
    left join interests_now on interests_now.interest_category = clusters.interest_category

)

select * from final

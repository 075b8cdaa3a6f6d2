with

categories as (

    select *
    from {{ fit_result('ml_customer_interest_fit', 'categories', columns=[
        'interest_category', 'interest_name', 'spend_level', 'is_frequent',
        'focus_product_category', 'focus_lift'
    ]) }}

),

fit_scores as (

    select customer_id, training_interest_category as interest_category, is_fit_sample
    from {{ ref('ml_customer_interest_training_assignments') }}

),

fit_baskets as (

    select * from {{ ref('int_customer_interest__baskets') }}
    where feature_window = 'before_cutoff'

),

product_categories as (

    select product_category, product_category_label from {{ ref('product_categories') }}

),

customer_interests as (

    select interest_category from {{ ref('customer_interests') }}

),

interests_now as (

    select interest_category, count(*) as n_customers
    from customer_interests
    group by interest_category

),

fit_profile as (

    select
        fit_scores.interest_category,
        count(*) as n_customers,
        count(*) filter (where fit_scores.is_fit_sample) as n_fit_sample,
        avg(fit_baskets.n_orders) as mean_n_orders,
        {{ exact_avg('fit_baskets.mean_basket_value') }} as mean_basket_value,
        {{ percentile_cont('fit_baskets.total_spend', 0.5) }} as median_total_spend,
        {{ money_sum('fit_baskets.total_spend') }} as total_spend
    from fit_scores
    inner join fit_baskets on fit_scores.customer_id = fit_baskets.customer_id
    group by fit_scores.interest_category

),

final as (

    select
        -- ids
        categories.interest_category,

        -- descriptive
        categories.interest_name,
        categories.spend_level,
        categories.is_frequent,
        categories.focus_product_category,
        product_categories.product_category_label as focus_product_category_label,

        -- numerics
        categories.focus_lift,
        cast(fit_profile.n_customers as integer) as n_customers_fit,
        fit_profile.n_customers / sum(fit_profile.n_customers) over () as customer_share_fit,
        cast(fit_profile.n_fit_sample as integer) as n_fit_sample,
        fit_profile.mean_n_orders,
        fit_profile.mean_basket_value,
        fit_profile.median_total_spend,
        fit_profile.total_spend
        / {{ money_sum('fit_profile.total_spend', '()') }} as spend_share_fit,
        cast(coalesce(interests_now.n_customers, 0) as integer) as n_customers_now

    from categories
    inner join fit_profile on categories.interest_category = fit_profile.interest_category
    left join product_categories
        on categories.focus_product_category = product_categories.product_category
    left join interests_now on categories.interest_category = interests_now.interest_category

)

select * from final

with

fit_scores as (

    select customer_id, training_interest_category as interest_category
    from {{ ref('ml_customer_interest_training_assignments') }}

),

fit_shares as (

    select customer_id, product_category, spend_share
    from {{ ref('int_customer_interest__spend_shares') }}
    where feature_window = 'before_cutoff'

),

product_categories as (

    select product_category, product_category_label from {{ ref('product_categories') }}

),

interest_sizes as (

    select interest_category, count(*) as n_customers
    from fit_scores
    group by interest_category

),

share_sums as (

    select
        fit_scores.interest_category, fit_shares.product_category,
        {{ exact_sum('fit_shares.spend_share') }} as sum_share
    from fit_scores
    inner join fit_shares on fit_scores.customer_id = fit_shares.customer_id
    group by fit_scores.interest_category, fit_shares.product_category

),

grid as (

    -- every interest category with every product category: no spend means a share of 0
    select
        interest_sizes.interest_category,
        interest_sizes.n_customers,
        product_categories.product_category,
        product_categories.product_category_label,
        coalesce(share_sums.sum_share, 0) as sum_share
    from interest_sizes
    cross join product_categories
    left join share_sums
        on interest_sizes.interest_category = share_sums.interest_category
        and product_categories.product_category = share_sums.product_category

),

overall as (

    select product_category, {{ exact_sum('sum_share') }} / sum(n_customers) as overall_mean_share
    from grid
    group by product_category

),

final as (

    select
        -- ids
        cast(grid.interest_category as integer) as interest_category,
        cast(grid.product_category as integer) as product_category,

        -- descriptive
        grid.product_category_label,

        -- numerics
        grid.sum_share / grid.n_customers as mean_spend_share,
        overall.overall_mean_share,
        case
            when overall.overall_mean_share > 0
                then grid.sum_share / grid.n_customers / overall.overall_mean_share
        end as lift

    from grid
    inner join overall on grid.product_category = overall.product_category

)

select * from final

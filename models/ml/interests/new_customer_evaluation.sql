{#-
  balanced accuracy = the mean over the true interest categories present of the share of their
  customers predicted correctly (recall), as sklearn.metrics.balanced_accuracy_score.
-#}
with

predictions as (

    select * from {{ ref('new_customer_predictions') }}

),

per_true_category as (

    select
        orders_seen,
        true_interest_category,
        avg(case when is_correct then 1 else 0 end) as recall,
        avg(case when is_baseline_correct then 1 else 0 end) as baseline_recall,
        avg(case when is_nearest_correct then 1 else 0 end) as nearest_recall
    from predictions
    group by orders_seen, true_interest_category

),

balanced as (

    select
        orders_seen,
        count(*) as n_true_categories,
        avg(recall) as balanced_accuracy,
        avg(baseline_recall) as baseline_balanced_accuracy,
        avg(nearest_recall) as nearest_cluster_balanced_accuracy
    from per_true_category
    group by orders_seen

),

overall as (

    select
        orders_seen,
        count(*) as n_customers,
        avg(case when is_correct then 1 else 0 end) as accuracy,
        avg(case when is_baseline_correct then 1 else 0 end) as baseline_accuracy,
        avg(case when is_nearest_correct then 1 else 0 end) as nearest_cluster_accuracy,
        min(baseline_interest_category) as baseline_interest_category
    from predictions
    group by orders_seen

),

final as (

    select
        -- ids
        overall.orders_seen,

        -- counts
        cast(overall.n_customers as integer) as n_customers,
        cast(balanced.n_true_categories as integer) as n_true_categories,

        -- classifier
        cast(overall.accuracy as double) as accuracy,
        cast(balanced.balanced_accuracy as double) as balanced_accuracy,

        -- majority-class baseline
        overall.baseline_interest_category,
        cast(overall.baseline_accuracy as double) as baseline_accuracy,
        cast(balanced.baseline_balanced_accuracy as double) as baseline_balanced_accuracy,

        -- reference: the nearest fitted cluster of the same first orders
        cast(overall.nearest_cluster_accuracy as double) as nearest_cluster_accuracy,
        cast(balanced.nearest_cluster_balanced_accuracy as double)
            as nearest_cluster_balanced_accuracy

    from overall
    inner join balanced on overall.orders_seen = balanced.orders_seen

)

select * from final

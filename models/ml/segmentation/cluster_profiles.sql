{#-
  One row per stage and cluster: the profile of its customers (customer_embeddings, both stages,
  with their R, F, M from customer_rfm; DBSCAN noise, cluster -1, is not profiled) and the name,
  meaning and strategy the fit gave it. The naming chose the names from the same means, computed
  in Python (retail_segments.ml.clustering.profile_clusters); here they are computed for the
  published table. Medians interpolate like pandas (macro percentile_cont); money is summed
  exactly (macro money_sum).
-#}
with

embeddings as (

    select * from {{ ref('customer_embeddings') }}

),

rfm as (

    select customer_id, recency_days, frequency, monetary
    from {{ ref('customer_rfm') }}

),

names as (

    select * from {{ fit_result(
        ['ml_segmentation_pca_fit', 'ml_segmentation_tsne_fit'], 'clusters', columns=[
        'stage', 'cluster_id', 'segment_name', 'meaning', 'strategy', 'archetype_distance',
        'name_source', 'previous_model_version'
    ]) }}

),

memberships as (

    -- stage is the published column's name
    select 'pca' as stage, customer_id, pca_cluster_id as cluster_id, is_fit_sample  -- noqa: RF04
    from embeddings

    union all

    select 'tsne' as stage, customer_id, tsne_cluster_id as cluster_id, is_fit_sample  -- noqa: RF04
    from embeddings

),

clustered as (

    select
        memberships.stage,
        memberships.cluster_id,
        memberships.is_fit_sample,
        rfm.recency_days,
        rfm.frequency,
        rfm.monetary
    from memberships
    inner join rfm on memberships.customer_id = rfm.customer_id
    where memberships.cluster_id <> -1

),

profiles as (

    select
        stage,
        cluster_id,
        count(*) as n_customers,
        avg(recency_days) as mean_recency_days,
        {{ percentile_cont('recency_days', 0.5) }} as median_recency_days,
        avg(frequency) as mean_frequency,
        {{ percentile_cont('frequency', 0.5) }} as median_frequency,
        {{ money_sum('monetary') }} / count(*) as mean_monetary,
        {{ percentile_cont('monetary', 0.5) }} as median_monetary,
        {{ money_sum('monetary') }} as revenue,
        sum(case when is_fit_sample then 1 else 0 end) as n_fit_sample
    from clustered
    group by stage, cluster_id

),

final as (

    select
        names.stage,
        names.cluster_id,
        names.segment_name,
        cast(profiles.n_customers as integer) as n_customers,
        profiles.mean_recency_days,
        cast(profiles.median_recency_days as double) as median_recency_days,
        profiles.mean_frequency,
        cast(profiles.median_frequency as double) as median_frequency,
        profiles.mean_monetary,
        cast(profiles.median_monetary as double) as median_monetary,
        profiles.revenue
        / nullif({{ money_sum('profiles.revenue', '(partition by profiles.stage)') }}, 0)
            as revenue_share,
        names.meaning,
        names.strategy,
        names.archetype_distance,
        cast(profiles.n_fit_sample as integer) as n_fit_sample,
        names.name_source,
        names.previous_model_version
    from names
    inner join profiles
        on names.stage = profiles.stage
        and names.cluster_id = profiles.cluster_id

)

select * from final

{#-
  One row per customer of customer_rfm: the RFM-score segment, the part I cluster (PCA) name, the
  part II segment (t-SNE clusters; classifier for everyone not clustered) and its strategy, and
  the customer's interest category (product categories they spend on), and what the customer is
  worth from here on (marts.customer_value: 12-month CLV and churn risk). is_fit_sample says whether
  the customer was in the sample the embeddings and clusterings were fitted on (everyone clustered
  at the real file's scale) or was placed in a cluster afterwards.
-#}
with

rfm as (

    select * from {{ ref('customer_rfm') }}

),

embeddings as (

    select customer_id, pca_segment_name, is_fit_sample
    from {{ ref('customer_embeddings') }}

),

scores as (

    select * from {{ ref('ml_customer_segment_scores') }}

),

interests as (

    select customer_id, interest_name
    from {{ ref('customer_interests') }}

),

customer_values as (

    select customer_id, clv_12m, prob_no_purchase_90d
    from {{ ref('customer_value') }}

),

segment_profiles as (

    select segment_name, strategy
    from {{ ref('cluster_profiles') }}
    where stage = 'tsne'

),

final as (

    select
        -- ids
        rfm.customer_id,

        -- rfm
        rfm.recency_days,
        rfm.frequency,
        rfm.monetary,
        rfm.r_score,
        rfm.f_score,
        rfm.m_score,
        rfm.rfm_segment,
        rfm.rfm_strategy,
        rfm.is_outlier,

        -- clusters
        cast(embeddings.pca_segment_name as string) as cluster_name,
        cast(scores.segment_name as string) as segment_name,
        cast(scores.assignment_method as string) as assignment_method,
        coalesce(embeddings.is_fit_sample, false) as is_fit_sample,
        segment_profiles.strategy as segment_strategy,
        cast(scores.model_version as string) as model_version,
        interests.interest_name,

        -- value
        customer_values.clv_12m,
        customer_values.prob_no_purchase_90d,

        -- timestamps
        rfm.rfm_as_of

    from rfm
    left join embeddings on rfm.customer_id = embeddings.customer_id
    left join scores on rfm.customer_id = scores.customer_id
    left join segment_profiles on scores.segment_name = segment_profiles.segment_name
    left join interests on rfm.customer_id = interests.customer_id
    left join customer_values on rfm.customer_id = customer_values.customer_id

)

select * from final

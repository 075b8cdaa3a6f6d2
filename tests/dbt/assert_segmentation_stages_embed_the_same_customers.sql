{#-
  Parts I and II are fitted by two Python models (ml_segmentation_pca_fit,
  ml_segmentation_tsne_fit) that must embed the same customers and fit the same sample, so that
  ml.customer_embeddings (their inner join) loses no one and is_fit_sample means one thing.
  Returns every customer missing from one stage or whose is_fit_sample differs between them.
-#}
with

pca_customers as (

    select customer.customer_id, customer.is_fit_sample
    from (
        select {{ unnest_list('customers') }} as customer
        from {{ ref('ml_segmentation_pca_fit') }}
    ) as fit

),

tsne_customers as (

    select customer.customer_id, customer.is_fit_sample
    from (
        select {{ unnest_list('customers') }} as customer
        from {{ ref('ml_segmentation_tsne_fit') }}
    ) as fit

),

final as (

    select
        coalesce(pca_customers.customer_id, tsne_customers.customer_id) as customer_id,
        pca_customers.is_fit_sample as pca_is_fit_sample,
        tsne_customers.is_fit_sample as tsne_is_fit_sample
    from pca_customers
    full outer join tsne_customers
        on pca_customers.customer_id = tsne_customers.customer_id
    where pca_customers.customer_id is null
        or tsne_customers.customer_id is null
        or pca_customers.is_fit_sample is distinct from tsne_customers.is_fit_sample

)

select * from final

with

components as (

    select * from {{ fit_result(
        ['ml_segmentation_pca_fit', 'ml_segmentation_tsne_fit'], 'embedding_summary') }}

),

final as (

    select * from components

)

select * from final

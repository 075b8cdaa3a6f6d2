with

candidates as (

    select * from {{ fit_result(
        ['ml_segmentation_pca_fit', 'ml_segmentation_tsne_fit'], 'candidates') }}

),

final as (

    select * from candidates

)

select * from final

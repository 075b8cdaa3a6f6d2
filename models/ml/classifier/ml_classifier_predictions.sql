{#-
  One row per customer the segment classifier was trained or tested on: its split, its part II
  segment and the segment the selected classifier predicts. The class metrics and the confusion
  matrix of the test split are computed from it.
-#}
with

predictions as (

    select * from {{ fit_result('ml_segment_classifier_fit', 'customers') }}

),

final as (

    select * from predictions

)

select * from final

{#-
  Append-only registry of fitted segment classifiers. A build appends the model it trained only
  when that version is new (model_version is a content hash of the fitted state and its metadata),
  so rebuilding on the same data adds nothing and older versions are kept for comparison.
  `dbt build --full-refresh` starts the registry afresh. The columns are the keys of the fit's
  row (ml_segment_classifier_fit), typed by this model's contract.
-#}
{{ config(
    materialized='incremental',
    unique_key='model_version',
    incremental_strategy='delete+insert',
    on_schema_change='fail'
) }}

with

fits as (

    select * from {{ fit_keys('ml_segment_classifier_fit') }}

),

final as (

    select fits.* from fits
    {% if is_incremental() %}
        where fits.model_version not in (select loaded.model_version from {{ this }} as loaded)
    {% endif %}

)

select * from final

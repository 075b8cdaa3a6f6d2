{#-
  Append-only registry of fitted segment classifiers. A build appends the model it trained only
  when that version is new (model_version is a content hash of the fitted state and its metadata),
  so rebuilding on the same data adds nothing and older versions are kept for comparison.
  `dbt build --full-refresh` starts the registry afresh.
-#}
{{ config(materialized='incremental', unique_key='model_version', on_schema_change='fail') }}

with

fit as (

    select * from {{ ref('ml_segment_classifier_fit') }}
    where result_table = 'model_registry'

),

final as (

    select
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,
        cast(artifact as blob) as artifact,
        cast(model_class as varchar) as model_class,
        cast(params as varchar) as params,
        cast(metrics as varchar) as metrics,
        cast(training_seconds as double) as training_seconds,
        cast(data_window_start as timestamp) as data_window_start,
        cast(data_window_end as timestamp) as data_window_end,
        cast(n_training_rows as integer) as n_training_rows,
        cast(sklearn_version as varchar) as sklearn_version,
        cast(created_at as timestamp) as created_at
    from fit
    {% if is_incremental() %}
    where model_version not in (select model_version from {{ this }})
    {% endif %}

)

select * from final

{#-
  Append-only record of retraining stability, kept beside ml.model_registry: each build whose
  classifier has a predecessor (the registry version(s) of the data window just before it) adds
  the share of customers the retrain moves to another segment, both models scoring the same as-of
  data. Keyed by the pair of versions; a rebuild on the same data adds nothing.
  `dbt build --full-refresh` starts it afresh, like the registry.
-#}
{{
    config(
        materialized='incremental',
        unique_key=['model_version', 'previous_model_version'],
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}

with

stability as (

    select * from {{ ref('ml_retraining_stability') }}

),

final as (

    select
        -- ids
        cast(model_version as string) as model_version,
        cast(previous_model_version as string) as previous_model_version,

        -- timestamps
        cast(previous_data_window_end as timestamp) as previous_data_window_end,
        cast(scored_as_of as timestamp) as scored_as_of,

        -- numerics
        cast(n_customers as integer) as n_customers,
        cast(n_changed as integer) as n_changed,
        cast(share_changed as double) as share_changed,
        cast(n_changed_after_renaming as integer) as n_changed_after_renaming,
        cast(share_changed_after_renaming as double) as share_changed_after_renaming

    from stability
    {% if is_incremental() %}
        where not exists (
                select 1
                from {{ this }} as recorded
                where recorded.model_version = stability.model_version
                    and recorded.previous_model_version = stability.previous_model_version
            )
    {% endif %}

)

select * from final

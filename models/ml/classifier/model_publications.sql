{#-
  Append-only log of the segment classifier versions that a successful build published: one row
  per ml.model_registry version (key: model_version). The registry records every model a build
  trains as soon as it is trained, also when the build then fails or is killed; only the versions
  logged here count as a previous model for later builds (ml.previous_model_registry,
  ml.retraining_stability), so a failed build's model never names a later build's segments.

  The rows are written by the on-run-end hook record_model_publications (macros/ml/), after every
  node has run, when the run had no error, failure or skip and it built ml_segment_classifier_fit
  and ml.model_registry. This model only creates the table, typed by its contract: empty, except
  when it is created beside a registry written before publications were logged (an older
  warehouse), whose versions it then records as 'registered_before_tracking'. It runs before the
  t-SNE fit (ml.previous_model_registry refs it), so those are the versions of earlier builds.

  `dbt build --full-refresh` keeps it (full_refresh=false): it is the record of what was
  published, and it runs early in the DAG while the registry is rebuilt late, so a refresh that
  failed in between would otherwise leave the registry's published versions unlogged. A version a
  refresh removed from the registry stays logged; readers join it to the registry.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false,
    on_schema_change='fail'
) }}

{%- set registry = adapter.get_relation(
    database=this.database, schema=this.schema, identifier='model_registry') %}

with

registered_before_tracking as (

    {% if not is_incremental() and registry is not none and not flags.FULL_REFRESH %}
        select
            registry.model_version,
            'registered_before_tracking' as publication_kind,
            {{ string_literal(invocation_id) }} as invocation_id,
            {{ run_started_at_timestamp() }} as build_started_at
        from {{ registry }} as registry
    {% else %}
        -- typed and empty: the on-run-end hook appends the published versions
        select
            cast(null as {{ dbt.type_string() }}) as model_version,
            cast(null as {{ dbt.type_string() }}) as publication_kind,
            cast(null as {{ dbt.type_string() }}) as invocation_id,
            cast(null as {{ dbt.type_timestamp() }}) as build_started_at
        where 1 = 0
    {% endif %}

),

final as (

    select * from registered_before_tracking

)

select * from final

{#-
  The registered models this build's t-SNE fit may inherit segment names from: the rows of
  ml.model_registry as the registry stands when this build starts, of the versions a successful
  build published (ml.model_publications): the model of a build that failed or was killed after
  registering it is left out. None on the first build (no registry yet) and on a --full-refresh
  run, which rebuilds the registry from scratch: a fresh build inherits nothing, so its names
  equal those of a build into an empty warehouse, and no cluster points at a registry version the
  refresh removes.

  model_registry is downstream of the fit, so it is read by name (a ref would be a cycle). A view:
  the fit reads the registry as it is when the fit runs, also in a build that selects only the fit
  and what follows it.
-#}
{{ config(materialized='view') }}

{%- set registry = adapter.get_relation(
    database=this.database, schema=this.schema, identifier='model_registry') %}

with

-- read only when the registry exists (sqlfluff compiles the first build's branch)
published as (  -- noqa: ST03

    select model_version from {{ ref('model_publications') }}

),

registry as (

    {% if registry is not none and not flags.FULL_REFRESH %}
        select
            registered.model_name,
            registered.model_version,
            registered.data_window_end,
            registered.artifact
        from {{ registry }} as registered
        where registered.model_version in (select published.model_version from published)
    {% else %}
        -- typed and empty
        select
            cast(null as {{ dbt.type_string() }}) as model_name,
            cast(null as {{ dbt.type_string() }}) as model_version,
            cast(null as {{ dbt.type_timestamp() }}) as data_window_end,
            cast(null as binary) as artifact
        where 1 = 0
    {% endif %}

),

final as (

    select * from registry

)

select * from final

{#-
  on-run-end: log the segment classifier this run trained in ml.model_publications when the run
  succeeded, so that later builds take only published models as their previous model.

  "Succeeded": a `dbt build` (a `dbt run` tests nothing, so it publishes nothing) in which no
  node ended in error, failure or skip (a warning is a success), and which built both
  ml_segment_classifier_fit and ml.model_registry (a build that selects neither publishes
  nothing). A run killed before its end runs no hook and publishes nothing either. The
  version is appended only when it is not logged yet (a rebuild on the same data adds nothing).
  Plain SQL that DuckDB and Spark (Parquet table) both run.
-#}
{% macro record_model_publications(results) %}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set failed = unsuccessful_results(results) -%}
    {%- set built = {} -%}
    {%- for result in results -%}
        {%- if result.node.resource_type == 'model' and result.status == 'success' -%}
            {%- do built.update({result.node.name: result.node}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if 'ml_segment_classifier_fit' not in built or 'model_registry' not in built -%}
        {{ return('') }}
    {%- endif -%}
    {%- if failed -%}
        {{ log("Model registry: this run did not succeed (" ~ failed[0] ~ "), so the classifier"
            ~ " it trained is not published.", info=true) }}
        {{ return('') }}
    {%- endif -%}
    {%- if flags.WHICH == 'run' -%}
        {{ log("Model registry: dbt run tests nothing, so the classifier it trained is not"
            ~ " published (dbt build publishes it).", info=true) }}
        {{ return('') }}
    {%- endif -%}
    {%- set log_node = graph.nodes.values()
        | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', 'model_publications') | first -%}
    {%- set publications = adapter.get_relation(
        database=log_node.database, schema=log_node.schema, identifier=log_node.alias) -%}
    {%- if publications is none -%}
        {{ log("Model registry: ml.model_publications does not exist (build it with the registry),"
            ~ " so the classifier this run trained is not published.", info=true) }}
        {{ return('') }}
    {%- endif -%}
    {%- set fit = built['ml_segment_classifier_fit'].relation_name -%}
    insert into {{ publications }}
        (model_version, publication_kind, invocation_id, build_started_at)
    select
        fit.model_version,
        'build_succeeded',
        {{ string_literal(invocation_id) }},
        {{ run_started_at_timestamp() }}
    from {{ fit }} as fit
    where fit.model_version not in (select logged.model_version from {{ publications }} as logged)
{% endmacro %}

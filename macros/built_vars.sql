{#-
  The vars the warehouse's tables were built with, for `python -m retail_segments build --select`
  (retail_segments.ops.preflight.vars_since_built): a build limited to some models, with other
  vars than the whole build before it, would build those models with the new values beside tables
  built with the old (customer_rfm on a history of another rfm_as_of is empty), and publish the
  mix. landing/built-vars.json holds {"vars": [{name, value}, ...], "valid": true}:

  - on-run-end, record_built_vars(): written after a whole `dbt build` in which no node ended in
    error, failure or skip (whole_build_succeeded()), with the vars of the prepared
    stamp (which check_prepared_inputs() found equal to the run's);
  - on-run-start, invalidate_built_vars(): a build or run whose vars differ from the record's
    marks it {"valid": false} before any relation is replaced; the next whole build that
    succeeds writes it again.

  On Spark the launcher keeps the record in Python around its dbt run
  (retail_segments.spark.build, preflight.write_built_vars); the spark__ hooks do nothing.
-#}
{% macro built_vars_path() -%}
    {{ return(landing_dir() ~ '/built-vars.json') }}
{%- endmacro %}

{% macro _stamp_vars_sql() -%}
    select vars from read_json(
        {{ string_literal(landing_dir() ~ '/current/prepared.json') }},
        columns = {'vars': 'struct(name varchar, value varchar)[]'}
    )
{%- endmacro %}

{% macro record_built_vars(results) %}
    {%- if not whole_build_succeeded(results) -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('record_built_vars', 'retail_segments')()) }}
{% endmacro %}

{% macro default__record_built_vars() -%}
    {%- if not database_is_a_file() -%}
        {{ return('') }}
    {%- endif -%}
    copy (select vars, true as valid from ({{ _stamp_vars_sql() }}))
    to {{ string_literal(built_vars_path()) }} (format json)
{%- endmacro %}

{% macro spark__record_built_vars() -%}
    {{ return('') }}
{%- endmacro %}

{% macro invalidate_built_vars() %}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('invalidate_built_vars', 'retail_segments')()) }}
{% endmacro %}

{% macro default__invalidate_built_vars() -%}
    {%- set record = built_vars_path() -%}
    {%- set found = run_query("select count(*) from glob(" ~ string_literal(record) ~ ")")
        .columns[0].values()[0] -%}
    {%- if found == 0 -%}
        {{ return('') }}
    {%- endif -%}
    {%- set same = run_query(
        "select coalesce(bool_and(built.valid and built.vars = stamp.vars), false)"
        ~ " from read_json(" ~ string_literal(record) ~ ", columns = {'vars':"
        ~ " 'struct(name varchar, value varchar)[]', 'valid': 'boolean'}) as built"
        ~ " cross join (" ~ _stamp_vars_sql() ~ ") as stamp"
    ).columns[0].values()[0] -%}
    {%- if same -%}
        {{ return('') }}
    {%- endif -%}
    copy (select false as valid) to {{ string_literal(record) }} (format json)
{%- endmacro %}

{% macro spark__invalidate_built_vars() -%}
    {{ return('') }}
{%- endmacro %}

{#-
  How dbt-spark writes this project's tables (root-project overrides; the DuckDB build never
  calls them). Spark's catalog is in memory, so every table is external Parquet at a fixed path,
  <RETAIL_SPARK_DIR>/tables/<schema>/<name>, and the launcher (retail_segments.spark.session)
  registers those directories again in a new process. A table rebuilt in a new process is created
  at its old, non-empty location (spark.sql.legacy.allowNonEmptyLocationInCTAS), which replaces
  its files.
-#}
{% macro spark_tables_dir() -%}
    {%- set root = env_var('RETAIL_SPARK_DIR', '') -%}
    {%- if not root and execute -%}
        {{ exceptions.raise_compiler_error(
            "RETAIL_SPARK_DIR is not set, so there is nowhere to put the Spark tables; nothing was"
            ~ " built.\n  Fix: run the Spark build with `python -m retail_segments build --target spark`"
            ~ " (or `make build TARGET=spark`), which sets it.") }}
    {%- endif -%}
    {{ return(root.rstrip('/') ~ '/tables') }}
{%- endmacro %}

{% macro spark_table_location(relation) -%}
    {{ return(spark_tables_dir() ~ '/' ~ relation.schema ~ '/' ~ relation.identifier) }}
{%- endmacro %}

{#- dbt-spark's location clause, for SQL tables and seeds: the table's fixed path. -#}
{% macro spark__location_clause() -%}
    location {{ string_literal(spark_tables_dir() ~ '/' ~ model.schema ~ '/' ~ model.alias) }}
{%- endmacro %}

{#-
  dbt Python models: dbt-spark's own writer supports neither a pyarrow table (what the fit models
  return) nor a location. retail_segments.spark.python_models.write_model_result writes the
  model's result (pandas, pyarrow or Spark DataFrame) as the Parquet table at its fixed path.
-#}
{% macro spark__create_table_as(temporary, relation, compiled_code, language='sql') -%}
    {%- if language == 'python' -%}
{{ compiled_code }}
# --- retail_segments: write the result on this process's Spark session --- #
from retail_segments.spark.python_models import write_model_result
write_model_result(
    spark, model(dbtObj(spark.table), spark), {{ tojson(relation | string) }},
    {{ tojson(spark_table_location(relation)) }},
)
    {%- else -%}
        {{ dbt.spark__create_table_as(temporary, relation, compiled_code, language) }}
    {%- endif -%}
{%- endmacro %}

{#-
  Seeds: dbt-spark binds the values with Python's % into '...' without escaping them (an
  apostrophe breaks the insert, a backslash is lost, an empty cell becomes 'None'). Here every
  value is a literal escaped by string_literal, an empty cell is NULL, and the first batch
  overwrites the table's files (a seed re-created at its old location would otherwise append).
-#}
{% macro spark__load_csv_rows(model, agate_table) -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
        {%- set sql -%}
            insert {{ 'overwrite table' if loop.first else 'into' }} {{ this.render() }}
            {% for row in chunk -%}
                {{ 'select' if loop.first else 'union all select' }}
                {%- for value in row -%}
                    {%- set column = agate_table.column_names[loop.index0] -%}
                    {%- set type = column_override.get(column, adapter.convert_type(agate_table, loop.index0)) %}
                    {% if value is none -%}
                        cast(null as {{ type }})
                    {%- else -%}
                        cast({{ string_literal(value) }} as {{ type }})
                    {%- endif -%}{{ ',' if not loop.last }}
                {%- endfor %}
            {% endfor -%}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.first -%}{%- do statements.append(sql) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(statements[0] if statements else '') }}
{%- endmacro %}

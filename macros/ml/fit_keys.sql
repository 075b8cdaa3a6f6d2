{#-
  The key columns of a fit (its scalar, top-level columns), typed by the calling model's contract.

  The twin of fit_result for a fit's keys: it selects every column the calling model's contract
  declares (or those named in `columns`) from the fit model's rows, cast to the contract's data
  type, so each type is stated once, in the yml. Use it as a relation:

      with fits as (select * from {{ fit_keys('ml_segment_classifier_fit') }}) ...
-#}
{% macro fit_keys(fit, columns=none) -%}
    {%- set declared = model.columns.values() | list -%}
    {%- if columns is not none -%}
        {%- set declared = declared | selectattr('name', 'in', columns) | list -%}
    {%- endif -%}
    {%- if declared | length == 0 and execute -%}
        {{ exceptions.raise_compiler_error(
            "fit_keys in " ~ model.name ~ ": the model's yml declares no columns to read from '"
            ~ fit ~ "'") }}
    {%- endif -%}
    (
        select
            {%- for column in declared %}
            cast({{ adapter.quote(column.name) }} as {{ column.data_type }})
                as {{ adapter.quote(column.name) }}{{ "," if not loop.last }}
            {%- endfor %}
        from {{ ref(fit) }}
    )
{%- endmacro %}

{#-
  on-run-start guard for `dbt build` / `dbt run`: checks every raw file of the online_retail
  sources before any relation is replaced, so a bad file stops the run with a message that names
  the file and the problem, and the marts of the last good build stay untouched.
  raw_lines (the raw file) must exist; incoming_lines (daily files, a glob) may match nothing.

  A file that passed is recorded in ops.raw_file_validations with its size and modification time;
  later runs skip a file whose path, size and modification time match a record (a daily
  incremental run then scans only the new day's file, not the whole history again). Any change
  to the file changes its size or modification time and validates it again; `--full-refresh`
  validates every file again.
-#}
{% macro validate_raw_source(source_name='online_retail') %}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {%- for node in graph.sources.values()
            | selectattr('source_name', 'equalto', source_name)
            | sort(attribute='name') -%}
        {%- set pattern = node.meta.raw_path -%}
        {%- set files = run_query("select file from glob('" ~ pattern ~ "') order by file").columns[0].values() -%}
        {%- if files | length == 0 and not node.meta.optional -%}
            {{ exceptions.raise_compiler_error(
                "Raw data file not found: '" ~ pattern ~ "'.\n"
                ~ "Paths tried, in order: $RETAIL_RAW_PATH (" ~ (env_var('RETAIL_RAW_PATH', 'not set')) ~ "), "
                ~ "data/raw/online_retail.csv.zst, ../shared/data/online_retail.csv.zst "
                ~ "(`make build` tries all three; plain `dbt build` reads $RETAIL_RAW_PATH or data/raw/).\n"
                ~ "Get the data: UCI Machine Learning Repository, 'Online Retail' (id 352), "
                ~ "https://archive.ics.uci.edu/dataset/352/online+retail ; save it as a zstd-compressed, "
                ~ "latin-1 CSV with header " ~ (node.meta.expected_columns | join(','))
                ~ " and set RETAIL_RAW_PATH to it.") }}
        {%- endif -%}
        {%- if files | length > 0 -%}
            {%- do run_query(
                "create schema if not exists ops;"
                ~ " create table if not exists ops.raw_file_validations ("
                ~ " file varchar not null, size_bytes bigint not null,"
                ~ " last_modified timestamp with time zone not null, n_lines bigint not null,"
                ~ " primary key (file))") -%}
        {%- endif -%}
        {%- for file in files -%}
            {%- set file_sql = file | replace("'", "''") -%}
            {%- set known = run_query(
                "select recorded.n_lines from read_blob('" ~ file_sql ~ "') as current_file"
                ~ " join ops.raw_file_validations as recorded"
                ~ " on recorded.file = current_file.filename"
                ~ " and recorded.size_bytes = current_file.size"
                ~ " and recorded.last_modified = current_file.last_modified"
            ).columns[0].values() -%}
            {%- if known | length > 0 and not flags.FULL_REFRESH -%}
                {{ log("Raw data file '" ~ file ~ "': unchanged since it was validated ("
                       ~ known[0] ~ " lines); not scanned again.", info=true) }}
            {%- else -%}
                {%- set n_lines = validate_raw_file(file, node.meta.expected_columns) -%}
                {%- do run_query(
                    "insert or replace into ops.raw_file_validations"
                    ~ " select filename, size, last_modified, " ~ n_lines
                    ~ " from read_blob('" ~ file_sql ~ "')") -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}


{#-
  Checks one raw file, in order: it is not empty (no header, no lines); the header holds exactly
  the expected columns; it has at least one data line; no required field is empty and every date,
  quantity, price and customer id parses. Raises a compiler error naming the file otherwise.
-#}
{% macro validate_raw_file(raw_path, expected) %}
    {%- set where = "Raw data file '" ~ raw_path ~ "'" -%}
    {%- set as_text -%}
        read_csv('{{ raw_path }}', header = true, delim = ',', quote = '"', escape = '"',
                 encoding = 'latin-1', all_varchar = true)
    {%- endset -%}

    {#- not empty: DuckDB names the single column of a file without any line 'column0' -#}
    {%- set header = run_query("describe select * from " ~ as_text).columns[0].values() | list -%}
    {%- if header == ['column0'] -%}
        {%- set n_text_lines = run_query(
            "select count(*) from read_csv('" ~ raw_path ~ "', header = false, all_varchar = true)"
        ).columns[0].values()[0] -%}
        {%- if n_text_lines == 0 -%}
            {{ exceptions.raise_compiler_error(where ~ " is empty: no header line and no data lines.") }}
        {%- endif -%}
    {%- endif -%}

    {#- the header -#}
    {%- set missing = expected | reject('in', header) | list -%}
    {%- set unexpected = header | reject('in', expected) | list -%}
    {%- if missing or unexpected -%}
        {{ exceptions.raise_compiler_error(
            where ~ " does not have the expected columns.\n"
            ~ "  missing: " ~ (missing | join(', ') or 'none') ~ "\n"
            ~ "  unexpected: " ~ (unexpected | join(', ') or 'none') ~ "\n"
            ~ "  expected header: " ~ (expected | join(','))) }}
    {%- endif -%}

    {#- data lines and values: one scan over the file as text -#}
    {%- set checks = [
        ('InvoiceNo', 'are empty', "InvoiceNo is null"),
        ('StockCode', 'are empty', "StockCode is null"),
        ('Country', 'are empty', "Country is null"),
        ('Quantity', 'are empty or not an integer', "try_cast(Quantity as integer) is null"),
        ('UnitPrice', 'are empty or not a number', "try_cast(UnitPrice as double) is null"),
        ('InvoiceDate', 'are empty or do not parse as M/D/YYYY H:MM', "try_strptime(InvoiceDate, '%m/%d/%Y %H:%M') is null"),
        ('CustomerID', 'are not an integer', "CustomerID is not null and try_cast(CustomerID as integer) is null"),
    ] -%}
    {%- set scan_sql -%}
        with lines as (
            select row_number() over () as data_line, * from {{ as_text }}
        )
        select
            count(*) as n_lines
            {%- for column, problem, condition in checks %},
            count(*) filter (where {{ condition }}) as bad_{{ loop.index }},
            min(data_line) filter (where {{ condition }}) as first_line_{{ loop.index }},
            arg_min({{ column }}, data_line) filter (where {{ condition }}) as first_value_{{ loop.index }}
            {%- endfor %}
        from lines
    {%- endset -%}
    {%- set scan = run_query(scan_sql).rows[0] -%}
    {%- if scan['n_lines'] == 0 -%}
        {{ exceptions.raise_compiler_error(where ~ " holds no data lines (only a header, or nothing).") }}
    {%- endif -%}
    {%- set problems = [] -%}
    {%- for column, problem, condition in checks -%}
        {%- set n_bad = scan['bad_' ~ loop.index] -%}
        {%- if n_bad > 0 -%}
            {%- do problems.append(
                "  column " ~ column ~ ": " ~ n_bad ~ " value(s) " ~ problem
                ~ " (first on line " ~ (scan['first_line_' ~ loop.index] + 1) ~ " of the file: '"
                ~ scan['first_value_' ~ loop.index] ~ "')") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if problems -%}
        {{ exceptions.raise_compiler_error(
            where ~ " has values that would not load cleanly; nothing was built:\n" ~ (problems | join('\n'))) }}
    {%- endif -%}
    {{ log("Raw data file '" ~ raw_path ~ "': " ~ scan['n_lines'] ~ " lines validated.", info=true) }}
    {{ return(scan['n_lines']) }}
{% endmacro %}

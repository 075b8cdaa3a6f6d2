{#-
  on-run-start guard for `dbt build` / `dbt run`. The inputs are checked and landed before dbt
  runs, by `python -m retail_segments prepare` (which `make build`, `python -m retail_segments
  build` and `backfill` run first; retail_segments/ops/preflight.py). This hook makes sure that
  what was prepared is what this run is about to build, before any relation is replaced:

  - a prepared set exists (landing/current/prepared.json) for this warehouse;
  - RETAIL_RAW_PATH (unset: the first default place that exists, as prepare looks) still names
    the prepared raw file, and every prepared file still exists with
    the same bytes (SHA-256), and RETAIL_INCOMING_GLOB matches exactly the prepared daily files;
  - every var has the value that was checked, and every fit's meta block the settings that were;
  - when the inputs are not the ones the warehouse was built from, the run is a --full-refresh.

  Anything else stops the run with what changed and the fix (run prepare again, or make build).
-#}
{% macro check_prepared_inputs() %}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('check_prepared_inputs', 'retail_segments')()) }}
{% endmacro %}

{% macro default__check_prepared_inputs() %}
    {%- set stamp_path = landing_dir() ~ '/current/prepared.json' -%}
    {%- set fix = "run `python -m retail_segments prepare` with the same --vars (or simply `make build`,"
        ~ " which prepares and builds), then this command again" -%}
    {%- set found = run_query("select count(*) from glob(" ~ string_literal(stamp_path) ~ ")")
        .columns[0].values()[0] -%}
    {%- if found == 0 -%}
        {{ exceptions.raise_compiler_error(
            "The inputs are not prepared (no " ~ stamp_path ~ "); nothing was built.\n  Fix: " ~ fix ~ ".") }}
    {%- endif -%}
    {%- set stamp_sql = "from read_json(" ~ string_literal(stamp_path) ~ ")" -%}
    {%- set stamp = run_query(
        "select warehouse, raw_path, incoming_glob, full_refresh, array_to_string(reasons, '; ') as reasons "
        ~ stamp_sql).rows[0] -%}
    {%- set problems = [] -%}
    {#- prepare refuses them too (preflight.check_whole_input); here for dbt run by hand -#}
    {%- if invocation_args_dict.get('empty') or invocation_args_dict.get('sample') -%}
        {%- do problems.append("dbt's --empty or --sample builds the models on part of the input,"
            ~ " so the warehouse would not reflect every line of the file (run without them)") -%}
    {%- endif -%}
    {%- set engine = run_query("select * " ~ stamp_sql) -%}
    {%- if 'engine' in engine.column_names and engine.rows[0]['engine'] != 'duckdb' -%}
        {%- do problems.append("the inputs were prepared for the " ~ engine.rows[0]['engine']
            ~ " build, not for DuckDB") -%}
    {%- endif -%}

    {#- the warehouse and the raw path this run uses -#}
    {%- set database_path = run_query(
        "select path from duckdb_databases() where database_name = current_database()").columns[0].values()[0] -%}
    {%- if not database_path -%}
        {%- do problems.append("this run builds a database in memory (a target such as lint),"
            ~ " not the warehouse " ~ stamp['warehouse'] ~ " (use the dev target)") -%}
    {%- elif stamp['warehouse'] != database_path
          and not stamp['warehouse'].endswith('/' ~ (database_path | replace('./', ''))) -%}
        {%- do problems.append("the inputs were prepared for the warehouse " ~ stamp['warehouse']
            ~ ", not " ~ database_path ~ " (set RETAIL_LANDING_DIR per warehouse)") -%}
    {%- endif -%}
    {#- without RETAIL_RAW_PATH, the raw file is the first of the default places that exists, as
        prepare resolves it (data/raw/, then ../shared/data/) -#}
    {%- set default_raw_path = none -%}
    {%- if 'default_raw_paths' in engine.column_names and not env_var('RETAIL_RAW_PATH', '') -%}
        {%- set defaults = run_query("select p from (select unnest(default_raw_paths) as p "
            ~ stamp_sql ~ ")").columns[0].values() | list -%}
        {%- set existing = [] -%}
        {%- for path in defaults -%}
            {%- if run_query("select count(*) from glob(" ~ string_literal(path) ~ ")")
                  .columns[0].values()[0] > 0 -%}
                {%- do existing.append(path) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set default_raw_path = existing[0] if existing else '' -%}
    {%- endif -%}
    {#- a RETAIL_RAW_PATH written otherwise than the prepared path (relative, ~, ..) is the
        prepared file only if it holds its bytes (read as this run reads paths) -#}
    {%- set raw_setting = env_var('RETAIL_RAW_PATH', '') -%}
    {%- set same_raw_file = none -%}
    {%- if raw_setting and raw_setting != stamp['raw_path'] -%}
        {%- set raw_sha = run_query("select f.sha256 from (select unnest(files) as f " ~ stamp_sql
            ~ ") where f.role = 'raw'").columns[0].values() | list -%}
        {%- set found = run_query("select count(*) from glob(" ~ string_literal(raw_setting) ~ ")")
            .columns[0].values()[0] -%}
        {%- set same_raw_file = found == 1 and run_query("select sha256(content) from read_blob("
            ~ string_literal(raw_setting) ~ ")").columns[0].values()[0] in raw_sha -%}
    {%- endif -%}
    {%- do check_prepared_raw_path(stamp['raw_path'], problems, default_raw_path, same_raw_file) -%}

    {#- every prepared file unchanged, and no daily file added or removed -#}
    {%- set files = run_query("select f.role, f.path, f.sha256 from (select unnest(files) as f "
        ~ stamp_sql ~ ")") -%}
    {%- set prepared_incoming = [] -%}
    {%- for file in files.rows -%}
        {%- if file['role'] == 'incoming' -%}{%- do prepared_incoming.append(file['path']) -%}{%- endif -%}
        {%- set exists = run_query("select count(*) from glob(" ~ string_literal(file['path']) ~ ")")
            .columns[0].values()[0] -%}
        {%- if exists == 0 -%}
            {%- do problems.append("the prepared " ~ file['role'] ~ " file " ~ file['path'] ~ " is gone") -%}
        {%- else -%}
            {%- set sha = run_query("select sha256(content) from read_blob(" ~ string_literal(file['path']) ~ ")")
                .columns[0].values()[0] -%}
            {%- if sha != file['sha256'] -%}
                {%- do problems.append("the " ~ file['role'] ~ " file " ~ file['path']
                    ~ " changed since it was prepared") -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {#- hidden files (.gitkeep) are not daily files: prepare's glob skips them too. Prepare
        records its glob's matches as written (symlinks kept, as glob() keeps them), and the
        files by their resolved paths (a stamp written before incoming_matches existed: those) -#}
    {#- ...nor does it match hidden folders below the pattern's fixed folder (its part before the
        first *, ? or [), which DuckDB's glob does -#}
    {%- set pattern = stamp['incoming_glob'] -%}
    {%- set cut = namespace(at=pattern | length) -%}
    {%- for magic in ['*', '?', '['] -%}
        {%- if pattern.find(magic) >= 0 and pattern.find(magic) < cut.at -%}
            {%- set cut.at = pattern.find(magic) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set fixed = pattern[:cut.at].rsplit('/', 1)[0] | length -%}
    {%- set matched = run_query("select file from glob(" ~ string_literal(pattern)
        ~ ") where not regexp_matches(substr(file, " ~ (fixed + 1) ~ "), '/[.]') order by file")
        .columns[0].values() | list -%}
    {%- set prepared_matches = [] -%}
    {%- if 'incoming_matches' in engine.column_names -%}
        {%- set prepared_matches = run_query("select unnest(incoming_matches) " ~ stamp_sql)
            .columns[0].values() | list -%}
    {%- endif -%}
    {%- for path in matched -%}
        {%- if path not in prepared_incoming and path not in prepared_matches
              and path != stamp['raw_path'] -%}
            {%- do problems.append("the incoming file " ~ path ~ " arrived after the inputs were prepared") -%}
        {%- endif -%}
    {%- endfor -%}

    {#- the vars that were checked -#}
    {%- set checked = run_query("select v.name, v.value from (select unnest(vars) as v " ~ stamp_sql ~ ")") -%}
    {%- do check_prepared_vars(checked.rows, problems) -%}

    {#- the fits' meta blocks that were checked (retail_segments.ops.settings.CheckedMeta):
        the keys other than the var-fed ones, as sorted JSON -#}
    {%- if 'meta' in engine.column_names -%}
        {%- set metas = run_query("select m.model, m.passthrough, m.json from"
            ~ " (select unnest(meta) as m " ~ stamp_sql ~ ")") -%}
        {%- for row in metas.rows -%}
            {%- set node = graph.nodes.get('model.retail_segments.' ~ row['model']) -%}
            {%- set own = {} -%}
            {%- for key, value in ((node.config.meta if node else none) or {}).items() -%}
                {%- if key not in row['passthrough'] -%}{%- do own.update({key: value}) -%}{%- endif -%}
            {%- endfor -%}
            {%- if tojson(own, sort_keys=true) != row['json'] -%}
                {%- do problems.append("the meta block of " ~ row['model'] ~ " is "
                    ~ tojson(own, sort_keys=true) ~ " but was checked as " ~ row['json']) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}

    {%- do raise_unless_prepared(problems, fix, stamp, "The warehouse was",
        "run `dbt build --full-refresh` (or `make build`, which does so by itself)") -%}
    {{ log("Inputs: as prepared (" ~ (files.rows | length) ~ " file(s), unchanged).", info=true) }}
    {{ return('') }}
{% endmacro %}


{#-
  The directory the inputs are prepared in: RETAIL_LANDING_DIR, else landing/ beside the warehouse
  (RETAIL_DUCKDB_PATH). retail_segments.ops.preflight.landing_dir is the same rule.
-#}
{% macro landing_dir() -%}
    {%- set configured = env_var('RETAIL_LANDING_DIR', '') -%}
    {%- if configured -%}
        {{ return(configured) }}
    {%- endif -%}
    {%- set warehouse = env_var('RETAIL_DUCKDB_PATH', 'warehouse/retail_segments.duckdb') -%}
    {{ return((warehouse.rsplit('/', 1)[0] if '/' in warehouse else '.') ~ '/landing') }}
{%- endmacro %}


{#-
  on-run-start, after check_prepared_inputs(): the sources online_retail.raw_lines and
  online_retail.incoming_lines as relations over the prepared Parquet (landing/current/...), so
  models read them with source(). Without an incoming file, incoming_lines is empty with the same
  columns.
-#}
{% macro register_prepared_inputs() -%}
    {%- if not execute or flags.WHICH not in ('build', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('register_prepared_inputs', 'retail_segments')()) }}
{%- endmacro %}

{% macro default__register_prepared_inputs() -%}
    {%- set current = landing_dir() ~ '/current' -%}
    {%- set n_incoming = run_query("select count(*) from glob(" ~ string_literal(current ~ '/incoming/*.parquet') ~ ")")
        .columns[0].values()[0] -%}
    create schema if not exists landing;
    create or replace view landing.raw_lines as
        select * from read_parquet({{ string_literal(current ~ '/raw/*.parquet') }});
    create or replace view landing.incoming_lines as
    {%- if n_incoming > 0 %}
        select * from read_parquet({{ string_literal(current ~ '/incoming/*.parquet') }});
    {%- else %}
        select * from landing.raw_lines where false;
    {%- endif %}
{%- endmacro %}


{#-
  The Spark build (retail_segments.spark.build) prepares the inputs in the same process, just
  before it runs dbt, and passes the stamp it wrote in RETAIL_PREPARED_STAMP: the files' SHA-256
  were checked moments ago. This hook refuses a run without it (dbt started by hand on the spark
  target), and checks, like the DuckDB hook, the stamp's engine, the raw file, the vars and the
  need for --full-refresh. The stamp is read by Spark's JSON reader.
-#}
{% macro spark__check_prepared_inputs() %}
    {%- set stamp_path = env_var('RETAIL_PREPARED_STAMP', '') -%}
    {%- set fix = "run the Spark build with `python -m retail_segments build --target spark` (or"
        ~ " `make build TARGET=spark`), which checks and lands the inputs and then runs dbt" -%}
    {%- if not stamp_path -%}
        {{ exceptions.raise_compiler_error(
            "The inputs are not prepared for this Spark run (RETAIL_PREPARED_STAMP is not set);"
            ~ " nothing was built.\n  Fix: " ~ fix ~ ".") }}
    {%- endif -%}
    {%- do spark_stamp_view(stamp_path) -%}
    {%- set stamp = run_query(
        "select engine, raw_path, full_refresh, array_join(reasons, '; ') as reasons"
        ~ " from retail_prepared_stamp").rows[0] -%}
    {%- set problems = [] -%}
    {%- if stamp['engine'] != 'spark' -%}
        {%- do problems.append("the inputs were prepared for the " ~ stamp['engine']
            ~ " build, not for Spark") -%}
    {%- endif -%}
    {%- do check_prepared_raw_path(stamp['raw_path'], problems) -%}
    {%- set checked = run_query(
        "select v.name, v.value from (select explode(vars) as v from retail_prepared_stamp)") -%}
    {%- do check_prepared_vars(checked.rows, problems) -%}
    {%- do raise_unless_prepared(problems, fix, stamp, "The Spark tables were", fix) -%}
    {{ log("Inputs: as prepared for Spark (" ~ stamp_path ~ ").", info=true) }}
    {{ return('') }}
{% endmacro %}

{#- The prepared stamp (JSON) as the temporary view retail_prepared_stamp (Spark). -#}
{% macro spark_stamp_view(stamp_path) -%}
    {%- do run_query("create or replace temporary view retail_prepared_stamp using json options"
        ~ " (path " ~ string_literal(stamp_path) ~ ", multiLine 'true')") -%}
{%- endmacro %}

{#-
  Spark: the sources as views over the landed Parquet directories of the prepared set (the
  stamp's `landed` paths), read afresh by every query (parquet.`dir`).
-#}
{% macro spark__register_prepared_inputs() -%}
    {%- do spark_stamp_view(env_var('RETAIL_PREPARED_STAMP')) -%}
    {%- set files = run_query("select f.role, f.landed from"
        ~ " (select explode(files) as f from retail_prepared_stamp)") -%}
    {%- set dirs = {} -%}
    {%- for file in files.rows -%}
        {%- do dirs.update({file['role']: file['landed'].rsplit('/', 1)[0]}) -%}
    {%- endfor -%}
    {%- do run_query("create schema if not exists landing") -%}
    {%- do run_query("create or replace view landing.raw_lines as select * from parquet."
        ~ spark_path_identifier(dirs['raw'])) -%}
    {%- if 'incoming' in dirs -%}
        {%- do run_query("create or replace view landing.incoming_lines as select * from parquet."
            ~ spark_path_identifier(dirs['incoming'])) -%}
    {%- else -%}
        {%- do run_query("create or replace view landing.incoming_lines as"
            ~ " select * from landing.raw_lines where false") -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- A path as a Spark identifier in backticks (parquet.`path`). -#}
{% macro spark_path_identifier(path) -%}
    {{ return('`' ~ (path | replace('`', '``')) ~ '`') }}
{%- endmacro %}


{#- Shared by both engines' checks: RETAIL_RAW_PATH names the prepared raw file; when it is not
    set, default_raw_path must be it: the first default place that exists ('' when none does;
    none when the caller cannot look, and then data/raw/ is assumed). -#}
{% macro check_prepared_raw_path(prepared_raw_path, problems, default_raw_path=none, same_file=none) -%}
    {%- set raw_setting = env_var('RETAIL_RAW_PATH', '') -%}
    {%- if not raw_setting and default_raw_path == '' -%}
        {%- do problems.append("RETAIL_RAW_PATH is not set and no default place holds a raw file,"
            ~ " but the prepared raw file is " ~ prepared_raw_path
            ~ " (set RETAIL_RAW_PATH to the file to build)") -%}
        {{ return('') }}
    {%- endif -%}
    {%- if not raw_setting and default_raw_path is not none -%}
        {%- if default_raw_path != prepared_raw_path -%}
            {%- do problems.append("RETAIL_RAW_PATH is not set, so this run's raw file is "
                ~ default_raw_path ~ " (the first default place that exists), but the prepared raw"
                ~ " file is " ~ prepared_raw_path ~ " (set RETAIL_RAW_PATH to the file to build)") -%}
        {%- endif -%}
        {{ return('') }}
    {%- endif -%}
    {%- set raw_setting = raw_setting or 'data/raw/online_retail.csv.zst' -%}
    {#- same_file: whether RETAIL_RAW_PATH holds the prepared file's bytes, when the caller can
        read it (DuckDB); else a relative setting must end the prepared path -#}
    {%- if prepared_raw_path != raw_setting and not same_file
          and (same_file is not none
               or not prepared_raw_path.endswith('/' ~ (raw_setting | replace('./', '')))) -%}
        {%- do problems.append("RETAIL_RAW_PATH is " ~ raw_setting ~ " but the prepared raw file is "
            ~ prepared_raw_path) -%}
    {%- endif -%}
{%- endmacro %}


{#- Shared by both engines' checks: every var has the value it was checked with (rows of name,
    value). -#}
{% macro check_prepared_vars(checked_rows, problems) -%}
    {%- for row in checked_rows -%}
        {%- if (var(row['name']) | string) != row['value'] -%}
            {%- do problems.append("var " ~ row['name'] ~ " is " ~ (var(row['name']) | string)
                ~ " but was checked as " ~ row['value']) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}


{#- Shared by both engines' checks: stop on any problem, or when the tables were built from other
    input and this run is not a --full-refresh. built: what holds the old lines, with its verb
    ("The warehouse was"). -#}
{% macro raise_unless_prepared(problems, fix, stamp, built, refresh_fix) -%}
    {%- if problems -%}
        {{ exceptions.raise_compiler_error(
            "What this run would build is not what was prepared; nothing was built:\n  - "
            ~ (problems | join('\n  - ')) ~ "\n  Fix: " ~ fix ~ ".") }}
    {%- endif -%}
    {%- if stamp['full_refresh'] and not flags.FULL_REFRESH -%}
        {{ exceptions.raise_compiler_error(
            built ~ " built from other input (" ~ stamp['reasons'] ~ "); a plain run would mix"
            ~ " old and new lines, so nothing was built.\n  Fix: " ~ refresh_fix ~ ".") }}
    {%- endif -%}
{%- endmacro %}

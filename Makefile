# The two commands of the README:
#   make build   create the environment, install everything, find the raw data, run `dbt build`
#   make test    create the environment, install everything, run every test (pytest + dbt)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Debian's Chromium renders the HTML report in the browser test (installed once; CI runs as root).
CHROMIUM ?= /usr/bin/chromium

# DuckDB 1.x readers of the serving copy, in an environment of their own, for its compatibility
# tests: the oldest supported DuckDB (retail_segments.ops.publish.OLDEST_DUCKDB_READER) and the newest
# 1.x command-line shell.
OLD_DUCKDB_VENV ?= .venv-duckdb1
OLD_DUCKDB      := 1.1.0
OLD_DUCKDB_CLI  := 1.5.6
OLD_DUCKDB_STAMP := $(OLD_DUCKDB_VENV)/.installed-$(OLD_DUCKDB)-cli-$(OLD_DUCKDB_CLI)

# The Spark build (`make build TARGET=spark`, docs/spark.md) and its CI test: the spark extras
# (dbt-spark, pyspark) in the environment, and Java 17 when the machine has none (CI runs as root).
SPARK_STAMP := $(VENV)/.installed-spark

.PHONY: build test bench bench-scale lint lint-python lint-sql docs clean clean-warehouse backfill report

# TARGET=spark builds on a local Spark session instead of DuckDB.
build: $(STAMP) $(if $(filter spark,$(TARGET)),$(SPARK_STAMP))
	$(PY) -m retail_segments build $(if $(TARGET),--target $(TARGET))

# Two pytest workers (the machine's two cores), each taking whole test files, so a file's
# module-scoped builds run once; the session's shared synthetic build runs once (tests/python/conftest.py).
# Before them, the linters (mypy and sqlfluff: 35 to 85 s of CPU each from a clean clone),
# Chromium and the DuckDB 1.x environment are independent of each other: made all at once, so
# the two installs (mostly downloads) wait on the network while the linters use the two cores.
test: $(STAMP) $(SPARK_STAMP)
	$(MAKE) --no-print-directory --jobs=4 --output-sync=target lint $(CHROMIUM) $(OLD_DUCKDB_STAMP)
	RETAIL_OLD_DUCKDB_VENV=$(OLD_DUCKDB_VENV) $(PY) -m pytest -n 2 --dist loadfile

# Synthetic inputs of the benchmarks (generated once, reused).
BENCH_DATA ?= data/bench

# The real file and a 10x synthetic file, each built on DuckDB and on a local Spark session; the
# real file also loaded on Spark as daily files arrive (last day incrementally), against DuckDB.
bench: $(STAMP) $(SPARK_STAMP)
	$(PY) -m retail_segments_dev.bench --scales 1,10 --spark-scales 1,10 --spark-incremental --data-dir $(BENCH_DATA)

# Fresh builds of the real file, 10x and 100x synthetic files (generated once into BENCH_DATA and
# reused; the 100x file takes minutes and 574 MB) and the pandas baseline at 1x.
bench-scale: $(STAMP)
	$(PY) -m retail_segments_dev.bench --scales 1,10,100 --data-dir $(BENCH_DATA)

# Segment history as of each month end (default: every month of the data), e.g.
#   make backfill START=2011-01 END=2011-06
backfill: $(STAMP)
	$(PY) -m retail_segments backfill $(if $(START),--start $(START)) $(if $(END),--end $(END))

# The HTML report from the published serving copy (after `make build`).
report: $(STAMP)
	$(PY) -m retail_segments report

# dbt's docs site (models, columns, lineage graph, exposures) on http://localhost:8080.
docs: $(STAMP)
	$(VENV)/bin/retail-segments docs
	$(VENV)/bin/dbt docs serve --profiles-dir . --no-browser

# mypy checks the Spark modules against dbt-spark and pyspark: lint runs with the spark extras.
lint: lint-python lint-sql

lint-python: $(STAMP) $(SPARK_STAMP)
	$(VENV)/bin/ruff check retail_segments retail_segments_dev models tests
	$(VENV)/bin/ruff format --check retail_segments retail_segments_dev models tests
	$(VENV)/bin/mypy

lint-sql: $(STAMP) $(SPARK_STAMP)
	$(VENV)/bin/sqlfluff lint models tests/dbt

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(SPARK_STAMP): $(STAMP) pyproject.toml
	command -v java >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }
	$(PY) -m pip install --quiet -e ".[dev,spark]"
	touch $(SPARK_STAMP)

$(OLD_DUCKDB_STAMP):
	$(PYTHON) -m venv $(OLD_DUCKDB_VENV)
	$(OLD_DUCKDB_VENV)/bin/python -m pip install --quiet duckdb==$(OLD_DUCKDB) duckdb-cli==$(OLD_DUCKDB_CLI)
	touch $@

# Headless Chromium needs no recommended package (printer tools, Mesa, upower); fontconfig's own
# dependency brings a font (DejaVu). Without them the install takes about 20 s instead of 40 s.
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

clean:
	rm -rf target logs dbt_packages

# Drop the warehouse's relations that no model defines (left by removed or renamed models).
clean-warehouse: $(STAMP)
	$(PY) -m retail_segments clean-warehouse

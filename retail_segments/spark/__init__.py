"""The project on Apache Spark: one Python process owns a local (or cluster) SparkSession and runs
the input checks, ``dbt build`` (through dbt-spark's ``session`` method, in process) and the
publish on it. See docs/spark.md.

* `retail_segments.spark.session`: the session's settings, the table directory every Spark table
  lives in (external Parquet tables at fixed paths, re-registered in the in-memory catalog when a
  new process starts), and running dbt in this process.
* `retail_segments.spark.python_models`: lets dbt-spark run the project's dbt Python models in
  this process, on this session (dbt-spark itself submits them only to Databricks).
* `retail_segments.spark.inputs`: the value checks and typed landing of a raw file in Spark.
* `retail_segments.spark.publish`: the serving copy from the Spark tables.
* `retail_segments.spark.build`: ``python -m retail_segments build --target spark``.

pyspark is an optional dependency (``pip install -e '.[spark]'``). The DuckDB build and backfill
import `retail_segments.spark.build` to tell whether the target is Spark; pyspark itself is
imported only when a Spark build runs.
"""

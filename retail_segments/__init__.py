"""retail-segments: the Python side of the customer segmentation warehouse.

The dbt project (``models/``) is the product; this package holds what runs around and inside it,
by audience:

- `retail_segments.ml`: what the dbt Python models call (segmentation, naming, the classifier
  and its skops registry, product and interest categories, history, customer value);
- `retail_segments.ops`: operations (the command line, input checks and landing, settings, the
  dbt runner, project paths, publishing the serving copy, the backfill);
- `retail_segments.report`: the offline HTML report drawn with plotly;
- `retail_segments.spark`: the Spark build (session, input checks in Spark, in-process Python
  models, publish);
- `retail_segments.frames`: what the model shells read and score with, on either engine;
- `retail_segments.sql`: the quoting of the SQL the package writes itself.

Development tools (synthetic data, the pandas reference and baseline, the benchmark) live in the
separate package ``retail_segments_dev``.
"""

__version__ = "0.1.0"

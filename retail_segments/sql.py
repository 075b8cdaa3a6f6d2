"""SQL text the package writes itself (the publish, the orphan sweep, the report, the model
shells' projections), in DuckDB's standard quoting: an identifier in double quotes and a string in
single quotes, each doubled inside. Spark's backtick identifiers are
`retail_segments.spark.session.quote_identifier`."""


def quote_identifier(name: str) -> str:
    """A SQL identifier holding name exactly."""
    return '"' + name.replace('"', '""') + '"'


def string_literal(text: str) -> str:
    """A SQL string literal holding text exactly."""
    return "'" + text.replace("'", "''") + "'"

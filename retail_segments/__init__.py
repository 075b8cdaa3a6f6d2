"""retail-segments: the Python side of the customer segmentation warehouse.

The dbt project (models/, python_models/) is the product; this package holds the logic the dbt
Python models call, so that pytest can import and test it directly.
"""

__version__ = "0.1.0"

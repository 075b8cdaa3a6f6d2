"""The HTML report: plotly charts of the serving copy in one self-contained offline file.

- `retail_segments.report.data`: every query of the report (`QUERIES`), run read-only.
- `retail_segments.report.figures`: one function per chart, each returning a plotly Figure.
- `retail_segments.report.page`: the sections and the page (plotly.js inlined once).
"""

from retail_segments.report.data import QUERIES, ReportData, ReportDataError, load_report_data
from retail_segments.report.page import Chart, Section, render_report, report_sections, write_report

__all__ = [
    "QUERIES",
    "Chart",
    "ReportData",
    "ReportDataError",
    "Section",
    "load_report_data",
    "render_report",
    "report_sections",
    "write_report",
]

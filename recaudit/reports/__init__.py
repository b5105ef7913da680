"""Render audit results: a self-contained HTML report, figures in one style, a CSV of metrics.

This package reads only ``recaudit.results``: it renders a results.json it did not compute.
"""

from recaudit.reports.export import metrics_csv
from recaudit.reports.html import check_status, overall_status, render_html

__all__ = ["check_status", "metrics_csv", "overall_status", "render_html"]

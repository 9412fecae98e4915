"""Render study results (numbers computed elsewhere) to a self-contained HTML page and JSON."""

from bayesinv.report.html import render_report

__all__ = ["render_report"]

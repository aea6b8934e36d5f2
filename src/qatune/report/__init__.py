"""Reports: Markdown and self-contained HTML with PNG figures."""

from qatune.report.study import build, write_report

__all__ = ["build", "write_report"]

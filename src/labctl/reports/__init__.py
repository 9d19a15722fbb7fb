"""Reports of a matrix result: Markdown, JUnit XML and one self-contained HTML page.

Pure: no root, no Docker/pyroute2/OVS, no network; the HTML page loads nothing
(CSS inline, SVG inline, no script). Input is the typed matrix result,
labctl.core.result.MatrixResult, as the runner produces it or `read_matrix`
reads it from report.json (a malformed value raises labctl.errors.UsageError
naming its path). Counts are taken from the cells.
"""

from labctl.core.result import MatrixResult, read_matrix
from labctl.reports import html, junit, markdown

__all__ = ["MatrixResult", "html", "junit", "markdown", "read_matrix"]

"""Reports of a matrix result: Markdown, JUnit XML and one self-contained HTML page.

Pure: no root, no Docker/pyroute2/OVS, no network; the HTML page loads nothing
(CSS inline, SVG inline, no script). Input is the matrix result as plain JSON:

    {"lab", "description", "notes", "topology_file", "started_at", "ended_at",
     "seconds", "host": {...}, "topology": {...}, "switches": [...],
     "offloads": {"on": {"tx": true, ...}, ...}, "cells": [...], "summary": {...}}

Each cell: switch, offload, status (passed | failed | skipped | error), reason,
expected, observed, run_dir, pcaps, diagnosis, seconds. Counts are taken from
the cells. A malformed value raises labctl.errors.UsageError naming its path.
"""

from labctl.reports import html, junit, markdown
from labctl.reports.common import Matrix, read_matrix

__all__ = ["Matrix", "html", "junit", "markdown", "read_matrix"]

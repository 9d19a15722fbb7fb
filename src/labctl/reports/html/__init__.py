"""A matrix result as one self-contained HTML page.

Everything is inline: CSS in a <style>, the chart and the topology drawing as
<svg>, no script, no font, no image, no stylesheet from anywhere. So the page
opens from a zip of the report directory on any machine, offline, and prints.
Links to captures are relative to `report_dir` when it is given, so the report
directory can be zipped together with the runs it points into.

- page.py: what the page shows, rendered by the jinja2 templates in templates/
  (templating.py; autoescaped: every string from the result is escaped);
- markdownish.py: the lab's description and notes (a little Markdown) as HTML;
- chart.py: HTTP success and latency per cell, placed here and written as SVG by
  templates/chart.svg.j2;
- topology.py: the topology drawing, likewise with templates/topology.svg.j2 (also
  `labctl graph`'s);
- svg.py: what the two drawings share;
- style.css: the page's style sheet, also the rules of `labctl graph --format svg`.
"""

from labctl.reports.html.chart import chart_svg
from labctl.reports.html.page import css, link_target, render
from labctl.reports.html.topology import topology_drawing

__all__ = ["chart_svg", "css", "link_target", "render", "topology_drawing"]

"""The report's colours, shared by the figures of one run and the overlay of several, so the
reader learns them once."""

from __future__ import annotations

# Trials that are not ``ok`` are drawn faded, so the eye goes to what can be deployed.
FADED = "#9e9e9e"
FRONT = "#c62828"
BUDGET = "#37474f"
KNEE = "#ffb300"
BASELINE_COLOUR = "#1565c0"
# The recommended models and the teacher's line: black and green, unlike every mark above and
# the Viridis scale of the trials, and still apart when printed in grey.
PICK = "#000000"
TEACHER = "#2e7d32"

# One colour per run in an overlay report (plotly's default qualitative palette).
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")

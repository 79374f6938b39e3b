"""The HTML page around the sections: one self-contained file (inline style, an inline script
that sorts the tables, plotly.js embedded once), so a report can be mailed or archived alone."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from search.report.formatting import esc


def embed_figures(figures: dict[str, go.Figure]) -> dict[str, str]:
    """Each figure as an HTML fragment; plotly.js (~4 MB) goes into the page once, with the
    first figure (the dict's order is the page's order), and later figures reuse it."""
    return {
        div_id: figure.to_html(
            full_html=False,
            include_plotlyjs=index == 0,
            div_id=div_id,
            default_height="520px",
            config={"displaylogo": False},
        )
        for index, (div_id, figure) in enumerate(figures.items())
    }


def html_page(title: str, sections: Sequence[str]) -> str:
    """The whole document: the non-empty ``sections`` between the inline style and the scripts
    that sort the tables and keep a printable picture of each 3-D view."""
    body = "\n".join(section for section in sections if section)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n<script>{_SORT_JS}</script>\n<script>{_PRINT_JS}</script>\n"
        "</body>\n</html>\n"
    )


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #212121; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #e0e0e0; }
.meta, .note, .caption, .footer, .counts { color: #424242; }
.caption, .footer { font-size: 0.9em; }
.warn { background: #fff3e0; border-left: 4px solid #ef6c00; padding: 0.6em 0.9em; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 0.35em 0.5em; text-align: right; }
th { background: #fafafa; }
td.genome, th:nth-child(2) { text-align: left; }
code { font-size: 0.95em; word-break: break-all; }
.tag { background: #c62828; color: white; border-radius: 3px; padding: 0 0.35em;
       font-size: 0.8em; white-space: nowrap; }
ul.tiers li { margin-bottom: 0.45em; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
td.arch-cell, th:nth-child(3) { text-align: left; }
table.glance th, table.glance td { text-align: right; }
table.glance td { white-space: nowrap; }
table.glance th:first-child, table.glance td:first-child { text-align: left; white-space: nowrap; }
tr.pick td { background: #fff8e1; }
.arch { display: inline-flex; gap: 2px; align-items: stretch; }
.blk { position: relative; display: inline-block; border: 1px solid #90a4ae; border-radius: 3px;
       padding: 0.15em 0.3em 0.35em; font-size: 0.72em; line-height: 1.25; text-align: center;
       white-space: nowrap; background: #eceff1; }
.blk .keep { position: absolute; left: 0; bottom: 0; height: 3px; background: #37474f; }
.blk.stem { background: #fafafa; color: #616161; }
.blk.k-mbconv { background: #e3f2fd; border-color: #64b5f6; }
.blk.k-dsconv { background: #e8f5e9; border-color: #81c784; }
.blk.k-gconv { background: #fff3e0; border-color: #ffb74d; }
.blk.k-conv { background: #f3e5f5; border-color: #ba68c8; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em;
          border-radius: 2px; vertical-align: middle; }
img.print-copy { display: none; }  /* on screen the live 3-D view; see _PRINT_JS */
@media print {
  /* On paper: no figure cut in two, no buttons that cannot be pressed, a heading kept with
     what it titles. */
  body { max-width: none; margin: 0; }
  .plotly-graph-div, .caption, tr, .blk { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .modebar, .modebar-container { display: none !important; }
  .has-print-copy { display: none !important; }
  img.print-copy { display: block; width: 100%; break-inside: avoid; page-break-inside: avoid; }
}
"""


# Sort a table by the clicked column (numbers by value, text by collation, empty cells last);
# a second click reverses. Cells carry their raw value in data-sort.
_SORT_JS = """
(function () {
  function key(row, col) {
    var cell = row.cells[col];
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent; }
    raw = raw.trim();
    if (raw === "") { return null; }
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }
  function paretonasSortTable(table, col, th) {
    var body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
      other.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
      var order = (typeof x === "number" && typeof y === "number")
        ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () { paretonasSortTable(table, col, th); });
    });
  });
})();
"""


# A 3-D view is drawn with WebGL, which the browser prints as a blank box; so each one keeps
# a picture of itself (plotly's own export, redone whenever the reader turns it), shown
# instead of the live view on paper only.
_PRINT_JS = """
(function () {
  function copy(div) {
    var img = div.parentNode.querySelector("img.print-copy");
    if (!img) {
      img = document.createElement("img");
      img.className = "print-copy";
      img.alt = "printable copy of the 3-D view";
      div.parentNode.insertBefore(img, div.nextSibling);
    }
    Plotly.toImage(div, {format: "png", width: div.offsetWidth, height: div.offsetHeight})
      .then(function (url) { img.src = url; div.classList.add("has-print-copy"); })
      .catch(function () { /* the live view stays; only the printout lacks the picture */ });
  }
  window.addEventListener("load", function () {
    if (typeof Plotly === "undefined") { return; }
    document.querySelectorAll(".plotly-graph-div").forEach(function (div) {
      var gl = (div.data || []).some(function (t) { return t.type === "scatter3d"; });
      if (!gl) { return; }
      copy(div);
      div.on("plotly_relayout", function () { copy(div); });
    });
  });
})();
"""

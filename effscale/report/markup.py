"""The HTML pieces of a report, escaped with the standard library's :func:`html.escape`:
tables (sortable by a few lines of inline script), inline images (data URIs), sections.

Nothing here names a resource outside the page: styles and the script are inline, images are
``data:`` URIs, so the page renders offline and fetches nothing.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# One cell: its text, or (text, sort key) when the text does not sort right (12.5 %, "").
Cell = Any


@dataclass(frozen=True)
class Section:
    """One part of the page: an anchor id, a heading and its HTML body."""

    id: str
    title: str
    body: str


def esc(value: Any) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def para(text: str, cls: str = "") -> str:
    """A paragraph of plain text (escaped)."""
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<p{attr}>{esc(text)}</p>"


def bullets(lines: Iterable[str]) -> str:
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f"<ul>{items}</ul>" if items else ""


def number(value: Any, digits: int = 3) -> str:
    """A float with ``digits`` decimals; "" for None, NaN or anything not a number."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(x) else f"{x:.{digits}f}"


def percent(value: Any, digits: int = 2) -> tuple[str, str]:
    """A fraction as ``12.34 %`` with its number as the sort key."""
    text = number(value, 6)
    return (f"{float(text) * 100:.{digits}f} %", text) if text else ("", "")


def _cell(cell: Cell, tag: str = "td") -> str:
    if isinstance(cell, tuple):
        text, key = cell
        return f'<{tag} data-sort="{esc(key)}">{esc(text)}</{tag}>'
    return f"<{tag}>{esc(cell)}</{tag}>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], *, caption: str = "",
          sortable: bool = True, cls: str = "") -> str:
    """A table; with ``sortable`` a click on a column heading sorts its rows (numbers as
    numbers, using each cell's sort key when it has one)."""
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="wide"><table class="{classes}">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def definitions(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table (not sortable)."""
    rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def image(png: bytes, alt: str, caption: str = "") -> str:
    """A PNG inline, as a ``data:`` URI."""
    data = base64.b64encode(png).decode("ascii")
    figcaption = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
            f"{figcaption}</figure>")


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def details(summary: str, body: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{body}</details>"


STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:1em 2em;color:#1b1b1b;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555}.banner{padding:.7em 1em;border-radius:6px;margin:1em 0;font-weight:600}
.partial{background:#fff4ce;border:1px solid #e0b100}
.done{background:#e6f4ea;border:1px solid #34a853}
.decision{font-size:1.2em;font-weight:600;margin:.6em 0}.decided{color:#137333}
.undecided{color:#8a5a00}.caveat{background:#fff4ce;padding:.5em .8em;border-radius:4px}
.verdict{font-size:1.08em;padding:.8em 1em;background:#f3f6fb;border-left:5px solid #1a73e8}
.signal{border-left-color:#34a853}.nosignal{border-left-color:#d93025}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;white-space:nowrap}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
table.sortable th{cursor:pointer}table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
table.kv th{text-align:left;font-weight:600}table.kv td{text-align:left;white-space:normal}
caption{caption-side:top;text-align:left;color:#555;padding-bottom:.3em}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}pre{background:#f7f7f7;padding:.8em;overflow:auto}
nav a{margin-right:1em}.note{color:#555;font-size:.92em}.wide{overflow-x:auto}
"""

# Sort a table by the clicked column: numbers as numbers (empty cells last), text otherwise.
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var up = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    var key = function (row) {
      var cell = row.children[index], k = cell.getAttribute("data-sort");
      return k === null ? cell.textContent.trim() : k;
    };
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.every(function (r) { var k = key(r); return k === "" || !isNaN(k); });
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      if (numeric) { x = Number(x); y = Number(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

# The browser may load nothing: no network, no file, only the inline style, script and images.
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def page(title: str, header: str, sections: Sequence[Section]) -> str:
    """The whole document: ``header`` (HTML) first, a table of contents, then the sections."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.body}</section>'
                   for s in sections)
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
            f"<body>{header}<nav>{nav}</nav>{body}<script>{SCRIPT}</script></body></html>\n")

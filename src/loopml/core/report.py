"""A self-contained HTML report: headings, text, tables and matplotlib figures inlined.

Every report a person reads (demo, monitoring, experiments, edge trade-offs) is one
file with its plots embedded, so it can be mailed or archived as is.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
     color:#1f2328;padding:0 1em}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.3em .7em;text-align:right}
th{background:#f6f8fa} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} img{max-width:100%} .note{color:#57606a}
.kpi{display:inline-block;margin:.3em 1.2em .3em 0;padding:.5em .9em;background:#f6f8fa;
     border-radius:6px} .kpi b{display:block;font-size:1.3em}
"""


class HtmlReport:
    """Build a report section by section, then ``write`` it.

    >>> r = HtmlReport("Demo")
    >>> r.heading("Metrics").text("AUC went up.").table([{"model": "lgbm", "auc": 0.71}])
    HtmlReport('Demo', 3 blocks)
    >>> "<td>lgbm</td>" in r.render()
    True
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._blocks: list[str] = []

    def __repr__(self) -> str:
        return f"HtmlReport({self.title!r}, {len(self._blocks)} blocks)"

    def heading(self, text: str) -> HtmlReport:
        self._blocks.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def text(self, text: str, note: bool = False) -> HtmlReport:
        cls = ' class="note"' if note else ""
        self._blocks.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def kpis(self, values: dict[str, Any]) -> HtmlReport:
        cells = "".join(
            f'<span class="kpi">{html.escape(str(k))}<b>{html.escape(_fmt(v))}</b></span>'
            for k, v in values.items()
        )
        self._blocks.append(f"<div>{cells}</div>")
        return self

    def table(self, rows: list[dict[str, Any]] | Any, max_rows: int = 200) -> HtmlReport:
        """A table from dict rows or a pandas DataFrame."""
        if hasattr(rows, "to_dict"):
            rows = rows.to_dict(orient="records")
        rows = list(rows)[:max_rows]
        if not rows:
            self._blocks.append('<p class="note">(no rows)</p>')
            return self
        cols = list(rows[0].keys())
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
            for r in rows
        )
        self._blocks.append(f"<table><tr>{head}</tr>{body}</table>")
        return self

    def figure(self, fig: Any, caption: str = "") -> HtmlReport:
        """Embed a matplotlib figure as PNG and close it."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._blocks.append(
            f'<figure><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}">{cap}</figure>'
        )
        return self

    def render(self) -> str:
        body = "\n".join(self._blocks)
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
            f"{body}</body></html>"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render())
        return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)

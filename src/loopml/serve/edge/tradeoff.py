"""The accuracy / size / speed trade-off of compression variants: measured, tabled, plotted.

Every variant is scored on the same evaluation rows against the uncompressed native
model, and timed in ONNX Runtime the same way, so the table compares like with like.
``choose`` then picks the smallest variant within ``--max-size`` and
``--max-metric-loss``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.predict.onnx import OnnxPredictor
from loopml.serve.edge.compression import Variant
from loopml.serve.edge.parity import Metric, score
from loopml.serve.edge.timing import median_us, rows_per_second


@dataclass(frozen=True)
class TradeoffRow:
    """One variant's measurements."""

    name: str
    method: str
    detail: str
    size_bytes: int
    size_ratio: float
    single_row_us: float
    batch_rows_per_s: float
    metric: str
    metric_value: float
    metric_loss: float
    parity_max_abs_diff: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    variants: list[Variant],
    signature: Signature,
    frame: Any,
    labels: Any,
    reference: Metric,
    batch_rows: int = 10_000,
    single_repeats: int = 200,
    on_variant: Callable[[str], None] | None = None,
) -> list[TradeoffRow]:
    """Score and time each variant on ``frame`` (a DataFrame of signature columns)."""
    one = {name: [frame[name].iloc[0]] for name in signature.names}
    reps = -(-batch_rows // len(frame))
    batch = {name: np.tile(frame[name].to_numpy(), reps)[:batch_rows] for name in signature.names}
    base_size = len(variants[0].onnx)
    rows = []
    for variant in variants:
        if on_variant is not None:
            on_variant(variant.name)
        predictor = OnnxPredictor(signature, variant.onnx, name=variant.name).load()
        predicted = predictor.predict(frame)
        metric = score(signature.task, labels, predicted, signature.classes)
        parity = None
        if variant.native is not None:
            parity = float(np.abs(variant.native(frame) - predicted).max())
        rows.append(
            TradeoffRow(
                name=variant.name,
                method=variant.method,
                detail=variant.detail,
                size_bytes=len(variant.onnx),
                size_ratio=len(variant.onnx) / base_size,
                single_row_us=median_us(lambda p=predictor: p.predict(one), single_repeats),
                batch_rows_per_s=rows_per_second(
                    lambda p=predictor: p.predict(batch), batch_rows, repeats=3
                ),
                metric=metric.name,
                metric_value=metric.value,
                metric_loss=metric.loss_against(reference),
                parity_max_abs_diff=parity,
            )
        )
        predictor.unload()
    return rows


def choose(
    rows: list[TradeoffRow], max_size: int | None = None, max_metric_loss: float | None = None
) -> TradeoffRow:
    """The smallest variant within both bounds (the original when no bound is given).

    Raises :class:`ValidationError` listing every variant's size and loss when none fits.
    """
    if max_size is None and max_metric_loss is None:
        return rows[0]
    fits = [
        r
        for r in rows
        if (max_size is None or r.size_bytes <= max_size)
        and (max_metric_loss is None or r.metric_loss <= max_metric_loss)
    ]
    if not fits:
        listed = "; ".join(
            f"{r.name}: {r.size_bytes} bytes, {r.metric} loss {r.metric_loss:+.4f}" for r in rows
        )
        raise ValidationError(
            f"no variant fits --max-size {max_size} and --max-metric-loss {max_metric_loss}: "
            f"{listed}. Loosen a bound or add a method with --compress",
            field="max_size",
        )
    return min(fits, key=lambda r: (r.size_bytes, r.metric_loss))


def to_markdown(rows: list[TradeoffRow], chosen: str | None = None) -> str:
    """The table people read (also written to the bundle as ``tradeoff.md``)."""
    metric = rows[0].metric if rows else "metric"
    lines = [
        f"| variant | method | size (KiB) | size vs original | single row (us) | "
        f"batch (rows/s) | {metric} | loss vs native | own parity |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mark = " **(chosen)**" if r.name == chosen else ""
        parity = "-" if r.parity_max_abs_diff is None else f"{r.parity_max_abs_diff:.1e}"
        lines.append(
            f"| {r.name}{mark} | {r.method}: {r.detail} | {r.size_bytes / 1024:.1f} | "
            f"{r.size_ratio:.1%} | {r.single_row_us:.0f} | {r.batch_rows_per_s:,.0f} | "
            f"{r.metric_value:.4f} | {r.metric_loss:+.4f} | {parity} |"
        )
    return "\n".join(lines) + "\n"


def figure(rows: list[TradeoffRow], chosen: str | None = None) -> Any:
    """Size and single-row latency against metric loss, one point per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (
        ("size_bytes", "ONNX size (KiB, log)", 1 / 1024),
        ("single_row_us", "single-row latency in ONNX Runtime (us, log)", 1.0),
    )
    for ax, (attr, label, scale) in zip(axes, panels, strict=True):
        for i, r in enumerate(rows):
            x = getattr(r, attr) * scale
            colour = "tab:red" if r.name == chosen else "tab:blue"
            ax.scatter([x], [r.metric_loss], color=colour, s=40, zorder=3)
            ax.annotate(
                r.name,
                (x, r.metric_loss),
                textcoords="offset points",
                xytext=(5, 4 if i % 2 == 0 else -11),
                fontsize=8,
            )
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{rows[0].metric} loss vs native (lower is better)")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.grid(True, alpha=0.3)
    title = "edge variants: accuracy / size / speed"
    fig.suptitle(title + (f" (chosen: {chosen})" if chosen else ""))
    fig.tight_layout()
    return fig


def png(fig: Any) -> bytes:
    """A figure as PNG bytes (the figure stays open for further use)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def report(
    rows: list[TradeoffRow], chosen: str, title: str, notes: list[str], fig: Any = None
) -> str:
    """The trade-off as one self-contained HTML page (table + plot); closes ``fig``."""
    from loopml.core.report import HtmlReport

    page = HtmlReport(title)
    page.kpis({"chosen": chosen, "variants": len(rows)})
    for note in notes:
        page.text(note, note=True)
    page.heading("Variants").table([r.to_dict() for r in rows])
    fig = fig if fig is not None else figure(rows, chosen)
    page.heading("Accuracy / size / speed").figure(fig, "chosen variant in red")
    return page.render()

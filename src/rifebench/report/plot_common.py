"""What every benchmark plot shares: the Agg backend, the title that says what
was measured where, and how an invalid row looks (hollow).

matplotlib is forced onto its Agg backend before pyplot is imported, so no
display is ever needed (servers, containers, CI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rifebench.report.table import RowRecord

INVALID_NOTE = "hollow: invalid measurement (see summary.md)"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (typed Any: the plots use a small part of it)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def measured(records: Sequence[RowRecord]) -> list[RowRecord]:
    return [r for r in records if r.throughput_img_s is not None]


def invalid(rec: RowRecord) -> bool:
    """Only a row whose own checks failed; a row without a verdict is not accused."""
    return rec.valid is False


def _distinct(records: Sequence[RowRecord], key: str, fallback: str) -> str:
    values = list(dict.fromkeys(str(v) for r in records if (v := getattr(r, key)) is not None))
    return " / ".join(values) or fallback


def context(records: Sequence[RowRecord]) -> str:
    """Model, size, platform and device of the rows drawn (each value once)."""
    return ", ".join(
        [
            f"model {_distinct(records, 'model', '?')}",
            _distinct(records, "size", "size ?"),
            _distinct(records, "platform", "platform ?"),
            _distinct(records, "device", "device ?"),
        ]
    )


def title(what: str, records: Sequence[RowRecord]) -> str:
    return f"{what}\n{context(records)}"


def row_label(rec: RowRecord, varying: Sequence[str]) -> str:
    cells = [f"{k}={rec.cells[k]}" for k in varying if rec.cells.get(k)]
    return "\n".join([f"row {rec.row}" + (" (invalid)" if invalid(rec) else ""), *cells])


def varying_cells(records: Sequence[RowRecord], skip: frozenset[str] = frozenset()) -> list[str]:
    keys = list(dict.fromkeys(k for r in records for k in r.cells if k not in skip))
    return [k for k in keys if len({r.cells.get(k) for r in records}) > 1]


def draw_ci(ax: Any, xs: Sequence[float], rows: Sequence[RowRecord], color: str = "black") -> None:
    """Error bars for the rows that have a throughput CI (REPEAT > 1), none elsewhere."""
    have = [
        (x, r)
        for x, r in zip(xs, rows, strict=True)
        if r.throughput_ci_low is not None and r.throughput_ci_high is not None
    ]
    if not have:
        return
    # `or 0.0` only narrows the type: every row here has a throughput and both bounds.
    ys = [r.throughput_img_s or 0.0 for _, r in have]
    err = [
        [max(0.0, y - (r.throughput_ci_low or 0.0)) for y, (_, r) in zip(ys, have, strict=True)],
        [max(0.0, (r.throughput_ci_high or 0.0) - y) for y, (_, r) in zip(ys, have, strict=True)],
    ]
    ax.errorbar([x for x, _ in have], ys, yerr=err, fmt="none", ecolor=color, capsize=4, zorder=4)


def finish(fig: Any, ax: Any, path: Path, text: str, note: str | None = None) -> str:
    """Title, an optional footnote, save, close; returns the title."""
    plt = pyplot()
    ax.set_title(text, fontsize=9)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="dimgrey", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.035 * (note.count("\n") + 1.5) if note else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return text

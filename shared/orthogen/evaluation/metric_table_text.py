"""A metric table as aligned text for a terminal or a log: metrics as rows, methods as columns."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from orthogen.metrics.x2ct import METRIC_KEYS


def format_metric_table(columns: Mapping[str, Mapping[str, float]], keys: Sequence[str] = METRIC_KEYS) -> str:
    """``{method: {metric: value}}`` -> lines ``metric  value(method 1)  value(method 2) ...``."""
    names = list(columns)
    lines = [f"{'metric':18s}" + "".join(f"{n:>22s}" for n in names)]
    for key in keys:
        lines.append(f"{key:18s}" + "".join(f"{columns[n][key]:22.4f}" for n in names))
    return "\n".join(lines)

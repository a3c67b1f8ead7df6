"""Training curves: one CSV row per logged step, and a PNG of every column against the step.

`metrics.csv` is plain text a student can open in a spreadsheet::

    step,epoch,seconds,loss,perceptual
    1,0,0.41,0.8123,0.5521

When a run resumes from a checkpoint at step s, rows after s (written after that checkpoint and
then lost with the crash) are dropped, so the curve has no duplicated steps.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from consent_and_watermark import writer


class MetricsLog:
    """Append-only CSV of scalar metrics keyed by `step`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._columns: list[str] = []  # header of the file, read once

    def _read_rows(self) -> tuple[list[str], list[dict[str, str]]]:
        if not self.path.is_file():
            return [], []
        with self.path.open(newline="") as file:
            reader = csv.DictReader(file)
            return list(reader.fieldnames or []), list(reader)

    def _rewrite(self, columns: list[str], rows: list[dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as file:
            out = csv.DictWriter(file, fieldnames=columns, restval="")
            out.writeheader()
            out.writerows(rows)

    def append(self, step: int, values: Mapping[str, float]) -> None:
        """Add one row; a metric seen for the first time adds a column (earlier rows leave it empty)."""
        row = {"step": str(step), **{key: f"{float(value):.6g}" for key, value in values.items()}}
        if not self._columns:
            self._columns = self._read_rows()[0]
        if not self._columns or any(key not in self._columns for key in row):
            columns, rows = self._read_rows()
            columns = columns or ["step"]
            self._columns = columns + [key for key in row if key not in columns]
            self._rewrite(self._columns, rows + [row])
            return
        with self.path.open("a", newline="") as file:
            csv.DictWriter(file, fieldnames=self._columns, restval="").writerow(row)

    def truncate_after(self, step: int) -> None:
        """Drop rows with a step greater than `step` (used when resuming from a checkpoint)."""
        columns, rows = self._read_rows()
        if columns:
            self._rewrite(columns, [row for row in rows if int(row["step"]) <= step])

    def read(self) -> dict[str, np.ndarray]:
        """Every column as a float array (NaN where a row has no value)."""
        columns, rows = self._read_rows()
        return {
            name: np.array([float(row[name]) if row.get(name) else math.nan for row in rows])
            for name in columns
        }


def plot_metrics(csv_path: str | Path, png_path: str | Path, skip: tuple[str, ...] = ("epoch",)) -> Path:
    """Draw each metric column against the step (one panel each) and save it through the writer."""
    data = MetricsLog(csv_path).read()
    names = [name for name in data if name != "step" and name not in skip]
    cols = min(len(names), 3) or 1
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    for index, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, index + 1)
        ok = ~np.isnan(data[name])
        ax.plot(data["step"][ok], data[name][ok], linewidth=1)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return writer.save_figure(fig, png_path)

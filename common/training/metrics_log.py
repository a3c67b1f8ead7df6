"""Training curves: one CSV row per logged step, and a PNG of every column against the step.

`metrics.csv` is plain text a student can open in a spreadsheet::

    step,epoch,seconds,loss,perceptual
    1,0,0.41,0.8123,0.5521

When a run resumes from a checkpoint at step s, rows after s (written after that checkpoint and
then lost with the crash) are dropped, so the curve has no duplicated steps. A file that is not such a
CSV (other bytes, a header without `step` first, a value that is not a number) is moved aside to
`metrics.csv.damaged` with a warning and a new log starts: the curve is lost, never the run.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from common.atomic import write_atomic
from common.errors import UserError, first_line
from consent_and_watermark import writer

log = logging.getLogger(__name__)


def _check(columns: list[str], rows: list[dict[str, str]]) -> None:
    """ValueError unless this is a log `MetricsLog` wrote: `step` first, an integer step and numbers."""
    if columns and columns[0] != "step":
        raise ValueError(f"the first column is {columns[0]!r}, not 'step'")
    for row in rows:
        if None in row:
            raise ValueError(f"step {row['step']} has more values than the header has columns")
        int(row["step"])
        for value in row.values():
            if value:
                float(value)


class MetricsLog:
    """Append-only CSV of scalar metrics keyed by `step`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._columns: list[str] = []  # header of the file, read once

    def _read_rows(self) -> tuple[list[str], list[dict[str, str]]]:
        """Header and rows; a damaged file is set aside (see the module docstring) and reads as empty."""
        if not self.path.is_file():
            return [], []
        try:
            with self.path.open(newline="", encoding="utf-8") as file:
                reader = csv.DictReader(file)
                columns, rows = list(reader.fieldnames or []), list(reader)
            _check(columns, rows)
        except (UnicodeDecodeError, csv.Error, ValueError) as err:
            self._set_aside(first_line(err))
            return [], []
        return columns, rows

    def _set_aside(self, reason: str) -> None:
        """Rename the damaged log to the first free `metrics.csv.damaged[.N]` name."""
        aside = self.path.with_name(self.path.name + ".damaged")
        number = 0
        while aside.exists():
            number += 1
            aside = self.path.with_name(f"{self.path.name}.damaged.{number}")
        try:
            self.path.rename(aside)
        except OSError as err:
            raise UserError(
                f"{self.path} is damaged ({reason}) and cannot be moved aside ({err.strerror}): "
                "move it away yourself and resume"
            ) from err
        self._columns = []
        log.warning("%s is damaged (%s): kept it as %s and started a new metrics log", self.path, reason,
                    aside.name)

    def _rewrite(self, columns: list[str], rows: list[dict[str, str]]) -> None:
        """The whole file again (a new column), atomically: a Ctrl-C here keeps the earlier rows."""
        text = io.StringIO(newline="")
        out = csv.DictWriter(text, fieldnames=columns, restval="")
        out.writeheader()
        out.writerows(rows)
        write_atomic(self.path, lambda file: file.write(text.getvalue().encode("utf-8")))

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
        with self.path.open("a", newline="", encoding="utf-8") as file:
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

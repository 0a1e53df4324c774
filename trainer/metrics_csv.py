"""The job's metrics CSV (`layout.METRICS`): a row per step, the columns of the job's method."""

from __future__ import annotations

import csv
import io
from typing import Any

from contracts import layout
from contracts.messages import StepMetrics
from contracts.spec import JobSpec
from trainer.reinforce import csv_columns as reinforcement_columns

CSV_FIELDS = {"train_accuracy": "train_mean_token_accuracy"}
"""Metrics CSV columns named otherwise than the `StepMetrics` field they hold."""


def csv_columns(spec: JobSpec) -> tuple[str, ...]:
    if spec.method.type == "reinforcement":
        return reinforcement_columns(spec)
    return layout.DPO_METRICS_COLUMNS if spec.method.type == "dpo" else layout.METRICS_COLUMNS


def metrics_csv(
    rows: list[dict[str, Any]], columns: tuple[str, ...] = layout.METRICS_COLUMNS
) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return out.getvalue().encode()


def csv_row(spec: JobSpec, step: int, metrics: StepMetrics) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step}
    values = metrics.metric_values()
    for column in csv_columns(spec)[1:]:
        value = values.get(CSV_FIELDS.get(column, column))
        row[column] = None if value is None else round(value, 6)
    return row

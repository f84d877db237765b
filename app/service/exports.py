"""Exports: an experiment's event log as CSV, streamed in chunks (never all rows in memory)."""
from __future__ import annotations

import csv
import io
from typing import Iterator

from ..domain.experiments import Experiment
from ..storage import Storage

EVENT_COLUMNS = ("id", "visitor", "variant", "context", "propensity", "holdout", "model_version", "created_at",
                 "reward_total", "reward_count")
CHUNK_CHARS = 64_000


def events_csv(storage: Storage, experiment: Experiment) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EVENT_COLUMNS)
    for event in storage.iter_events(experiment.id):
        writer.writerow([event[c] for c in EVENT_COLUMNS])
        if buffer.tell() > CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()

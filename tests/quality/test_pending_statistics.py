"""``quality.files.start_statistics``: the statistics summed up in a thread beside the gate. A
run that does not want them (the gate failed, rows were set aside, the run was interrupted)
stops the thread at its next batch instead of waiting for it to read every file; a failure in
the thread is raised when they are wanted and swallowed when they are not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from quality_projects import BAD, accounts

from featurestore.expectations import NotNull
from quality import files as quality_files
from tests.quality.test_files_counts import day_files


def test_discarded_statistics_stop_at_the_next_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    view = accounts(NotNull("balance"))
    frame = day_files(tmp_path, BAD)
    real = quality_files._batches
    first_read, go_on = threading.Event(), threading.Event()
    read: list[int] = []

    def slow(*args: Any) -> Iterator[pa.Table]:
        for batch in real(*args):
            read.append(batch.num_rows)
            first_read.set()
            go_on.wait(5)  # the run decides while the thread is at its first batch
            yield batch

    monkeypatch.setattr(quality_files, "_batches", slow)
    assert len(frame.paths) > 1
    pending = quality_files.start_statistics(view, frame)
    assert first_read.wait(5)
    threading.Timer(0.2, go_on.set).start()
    pending.discard()
    assert len(read) == 1  # not every file read: stopped after the batch it had


def test_a_failure_in_the_thread_is_raised_when_wanted_and_not_when_discarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = accounts(NotNull("balance"))
    frame = day_files(tmp_path, BAD)

    def broken(*args: Any) -> Iterator[pa.Table]:
        raise OSError("a date file went away")
        yield  # a generator

    monkeypatch.setattr(quality_files, "_batches", broken)
    quality_files.start_statistics(view, frame).discard()  # not wanted: no error
    with pytest.raises(OSError, match="went away"):
        quality_files.start_statistics(view, frame).result()

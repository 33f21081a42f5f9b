"""``quality.files``: the gate's scan also counts what the statistics need (values, distinct
values), and :func:`quality.files.statistics` of the same files uses those counts instead of
scanning again. The statistics must be the same either way, and never those of files that were
written again since the gate read them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from quality_projects import BAD, Row, accounts, table, utc

from featurestore.expectations import NotNull
from featurestore.frames import DayFiles
from quality import files as quality_files


def day_files(folder: Path, rows: list[Row]) -> DayFiles:
    folder.mkdir(parents=True, exist_ok=True)
    data = table(rows)
    days = pc.strftime(data.column("ts"), format="%Y-%m-%d").to_pylist()
    out = {}
    for day in sorted(set(days)):
        out[day] = folder / f"{day}.parquet"
        pq.write_table(data.filter(pc.equal(pa.array(days), day)), out[day])
    return DayFiles(files=out, rows=data.num_rows)


def test_statistics_after_the_gate_are_those_of_a_scan_of_their_own(tmp_path: Path) -> None:
    view = accounts(NotNull("balance"))
    alone = quality_files.statistics(view, day_files(tmp_path / "alone", BAD))
    frame = day_files(tmp_path / "gated", BAD)
    quality_files.validate(view, frame, reference_time=utc(2024, 3, 3))
    key = quality_files._files_key(frame)
    assert key in quality_files._counted  # the gate kept its counts for these files
    assert quality_files.statistics(view, frame) == alone
    # Used once, then forgotten (other tests' gates may have left counts of their own files).
    assert key not in quality_files._counted


def test_files_written_again_after_the_gate_are_counted_again(tmp_path: Path) -> None:
    view = accounts(NotNull("balance"))
    frame = day_files(tmp_path / "frame", BAD)
    quality_files.validate(view, frame, reference_time=utc(2024, 3, 3))
    # The same paths and rows, every balance now missing: the gate's counts no longer hold.
    for path in frame.paths:
        data = pq.read_table(path)
        at = data.schema.get_field_index("balance")
        pq.write_table(data.set_column(at, "balance", pa.nulls(data.num_rows, pa.float64())), path)
    stats = quality_files.statistics(view, frame)
    assert stats["balance"]["null_fraction"] == 1.0
    assert stats["balance"]["distinct"] == 0
    quality_files._counted.clear()
    assert quality_files.statistics(view, frame) == stats

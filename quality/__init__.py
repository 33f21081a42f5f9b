"""The quality gate: every run validates what it computed before anyone can read it, and keeps
statistics of what it published.

* :mod:`quality.gate` checks a computed frame (Arrow or pandas) against its view's
  expectations with Great Expectations 1.x (an ephemeral context: no project files);
  :mod:`quality.spark` does the same for Spark DataFrames.
* :mod:`quality.statistics` computes per-feature statistics and drift (population stability
  index against the previous successful run) with pyarrow and numpy; no Great Expectations.
* :mod:`quality.checked_run` is what an engine calls between computing and publishing: it
  validates, quarantines failing rows when asked to, computes statistics, records both in the
  registry, and raises :class:`featurestore.errors.QualityCheckFailedError` on a blocking failure.

Importing this package is cheap: Great Expectations (5-9 s to import) and pyspark load only
when a view with expectations is validated, or a Spark DataFrame is checked.
"""

from __future__ import annotations

from quality.report import ExpectationResult, QualityReport, QuarantineInfo

__all__ = ["ExpectationResult", "QualityReport", "QuarantineInfo"]

"""The unified ETL: compute a feature view once, publish the same rows offline and online."""

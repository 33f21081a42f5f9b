"""The SQLite online store's settings, apart from the store (``featurestore/online/sqlite.py``).

Every project without an ``online_store`` section gets these settings, so reading any project
file loads this module: it imports no Arrow and no value codec, which the store's module does
(``import pyarrow`` alone costs ~300 ms of CPU here), and ``ONLINE_STORE_KINDS`` names it as the
kind's settings module."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from featurestore.config import ConfigPath, OnlineStoreConfig


class SqliteOnlineConfig(OnlineStoreConfig):
    """``online_store: {type: sqlite, path: data/online.db}``: the embedded online store in one
    SQLite file (relative to the project's folder), no server needed."""

    type: Literal["sqlite"] = "sqlite"
    path: ConfigPath = Path("data/online.db")

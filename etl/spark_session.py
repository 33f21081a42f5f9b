"""The Spark session the Spark engine runs in: created from the project's config (master, conf,
quiet logs, UTC, the Hive metastore of a Hive offline store) unless the process has one."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

from featurestore.config import ProjectConfig, SparkEngineConfig
from featurestore.errors import RunError
from featurestore.offline.hive import HiveOfflineStore

with warnings.catch_warnings():
    # pyspark warns that it "does not yet fully support pandas >= 3.0.0"; conversions both ways
    # work for the types we use (NOTES.md), and the differential tests check the values.
    warnings.simplefilter("ignore", FutureWarning)
    from pyspark.sql import SparkSession

DEFAULT_CONF: dict[str, str] = {
    # Every time is UTC: a CAST(ts AS DATE) must not depend on where the driver runs.
    "spark.sql.session.timeZone": "UTC",
    # Parquet timestamps as the Parquet store writes them (INT64 µs, UTC), not Spark's INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}

_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = fatal
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
logger.hive.name = org.apache.hadoop.hive
logger.hive.level = error
logger.metastore.name = org.apache.spark.sql.hive
logger.metastore.level = error
logger.datanucleus.name = DataNucleus
logger.datanucleus.level = error
logger.shutdown.name = org.apache.spark.util.ShutdownHookManager
logger.shutdown.level = error
logger.blockmanager.name = org.apache.spark.storage.BlockManager
logger.blockmanager.level = error
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
"""


def _log4j_file() -> Path:
    path = Path(tempfile.gettempdir()) / "featurestore-spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_LOG4J)
        os.replace(tmp, path)
    return path


def _under_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands the Python driver its gateway.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(
    config: ProjectConfig, engine: SparkEngineConfig | None = None, *, hive: HiveOfflineStore | None = None
) -> SparkSession:
    """The process's SparkSession, created from the project's config when there is none yet:
    ``engine.master`` (``local[*]`` unless ``spark-submit`` gave one), ``engine.conf``, quiet
    logs, UTC, and the Hive metastore of ``hive`` (Derby in its folder, or its URI)."""
    engine = engine or (config.engine if isinstance(config.engine, SparkEngineConfig) else SparkEngineConfig())
    active = SparkSession.getActiveSession()
    if active is not None:
        if hive is not None and active.conf.get("spark.sql.catalogImplementation", "in-memory") != "hive":
            raise RunError(
                "The Hive offline store needs a SparkSession with Hive support, but this process already "
                "runs one without it; build it with .enableHiveSupport() or let the engine create it"
            )
        return active
    master = engine.master or ("" if _under_spark_submit() else "local[*]")
    if master.startswith("local") or "127.0.0.1" in master or "localhost" in master:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers run this interpreter, which has the project installed (pyspark reads the
    # variable, not the spark.pyspark.python setting, when it starts the context itself).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf: dict[str, str] = {
        **DEFAULT_CONF,
        "spark.app.name": f"featurestore-{config.project}",
        # Executors run Python with this interpreter, which has the project installed.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    java_options = [f"-Dlog4j2.configurationFile=file:{_log4j_file()}"]
    if hive is not None:
        hive.metastore.mkdir(parents=True, exist_ok=True)
        hive.warehouse.mkdir(parents=True, exist_ok=True)
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.sql.warehouse.dir"] = str(hive.warehouse)
        if hive.metastore_uri:
            conf["spark.hadoop.hive.metastore.uris"] = hive.metastore_uri
        else:
            url = f"jdbc:derby:;databaseName={hive.metastore / 'metastore_db'};create=true"
            conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = url
            java_options.append(f"-Dderby.system.home={hive.metastore}")
    for key, value in engine.conf.items():
        conf[key] = str(value).lower() if isinstance(value, bool) else str(value)
    user_options = conf.get("spark.driver.extraJavaOptions", "")
    conf["spark.driver.extraJavaOptions"] = " ".join([*java_options, user_options]).strip()
    builder = SparkSession.builder
    if master:
        builder = builder.master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if hive is not None:
        builder = builder.enableHiveSupport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    if hive is not None and not hive.metastore_uri and session.sparkContext._jvm is not None:
        # Derby writes derby.log in its home, read when the metastore first boots; a JVM started
        # before (by an earlier session in this process) lacks the -D option above.
        session.sparkContext._jvm.java.lang.System.setProperty("derby.system.home", str(hive.metastore))
    return session

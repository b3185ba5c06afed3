"""Where a lake is: its PostgreSQL catalog and its data path, and a DuckDB connection to it.

The DuckLake, postgres and httpfs extensions are loaded from the wheels pip installed beside
DuckDB (duckdb-extension-*, pinned to DuckDB's version), never downloaded: machines may be
offline, and an extension of another DuckDB version refuses to load.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import duckdb

from collector.storage import lake_sql
from collector.storage.leader_lock import SCHEMA_KEY, with_lock
from collector.storage.protocols import StoreUnavailable

LAKE_ALIAS = "lake"
SCHEMES = ("postgresql", "postgres")


class BadLakeLocation(ValueError):
    """A --lake URL or --lake-data path that names no usable lake."""


@dataclass(frozen=True)
class LakeLocation:
    """postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE and a data folder or s3:// URL."""

    user: str
    password: str | None
    host: str
    port: int
    database: str
    data_path: str

    @classmethod
    def parse(cls, catalog_url: str, data_path: str) -> LakeLocation:
        try:
            parts = urlsplit(catalog_url)
        except ValueError as exc:  # an unclosed IPv6 bracket, for one
            raise BadLakeLocation(f"--lake is not a URL: {exc}") from exc
        if parts.scheme not in SCHEMES:
            raise BadLakeLocation(f"--lake must be a postgresql:// URL, not {catalog_url!r}")
        database = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not database or "/" in database:
            raise BadLakeLocation(
                f"--lake needs a host and a database: postgresql://USER@HOST:PORT/DB, not {catalog_url!r}"
            )
        try:
            port = parts.port or 5432
        except ValueError as exc:
            raise BadLakeLocation(f"--lake has a bad port: {exc}") from exc
        if not data_path:
            raise BadLakeLocation("lake mode needs --lake-data: a folder or an s3:// URL for the Parquet files")
        return cls(
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password) if parts.password is not None else None,
            host=parts.hostname,
            port=port,
            database=database,
            data_path=data_path,
        )

    def libpq(self) -> str:
        """The catalog as a libpq keyword string (values quoted as libpq quotes them), without the
        password: DuckDB and libpq quote a connection string in their errors, so the password
        goes separately (a DuckDB secret, psycopg's keyword)."""
        fields = {"dbname": self.database, "host": self.host, "port": str(self.port), "user": self.user}
        return " ".join(f"{key}={_libpq_quote(value)}" for key, value in fields.items())

    def describe(self) -> str:
        """For logs and errors: no password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database} with data in {self.data_path}"


def _libpq_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def extension_file(name: str) -> Path:
    """The extension binary inside its installed wheel (duckdb_extension_<name>)."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise StoreUnavailable(f"lake mode needs the duckdb-extension-{name.replace('_', '-')} wheel (pip install)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{duckdb.__version__}"
    path = folder / f"{name}.duckdb_extension"
    if not path.is_file():
        raise StoreUnavailable(f"no {name} extension for DuckDB {duckdb.__version__} in {folder}: reinstall its wheel")
    return path


def s3_secret(environ: Mapping[str, str]) -> str:
    """CREATE SECRET for an s3:// data path from the AWS_* variables (the AWS CLI's names):
    keys, session token, region, and an endpoint for S3-compatible stores (path-style URLs)."""
    fields = {
        "KEY_ID": environ.get("AWS_ACCESS_KEY_ID"),
        "SECRET": environ.get("AWS_SECRET_ACCESS_KEY"),
        "SESSION_TOKEN": environ.get("AWS_SESSION_TOKEN"),
        "REGION": environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"),
    }
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    options = [f"{key} {_sql_string(value)}" for key, value in fields.items() if value]
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options += [f"ENDPOINT {_sql_string(parts.netloc)}", "URL_STYLE 'path'"]
        options.append(f"USE_SSL {str(parts.scheme == 'https').lower()}")
    return f"CREATE OR REPLACE SECRET fluoro_lake_s3 (TYPE s3{''.join(', ' + o for o in options)})"


def connect(location: LakeLocation, environ: Mapping[str, str] = os.environ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` and in use."""
    on_s3 = location.data_path.startswith("s3://")
    extensions = [extension_file(name) for name in ("postgres_scanner", "ducklake", *(("httpfs",) if on_s3 else ()))]
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        for path in extensions:
            con.execute(f"LOAD {_sql_string(str(path))}")
        if on_s3:
            con.execute(s3_secret(environ))
        if location.password is not None:
            password = _sql_string(location.password)
            # Unnamed: the default postgres secret, which ATTACH merges into its connection string.
            con.execute(f"CREATE SECRET (TYPE postgres, PASSWORD {password})")
        con.execute(
            f"ATTACH {_sql_string('ducklake:postgres:' + location.libpq())} AS {LAKE_ALIAS} "
            f"(DATA_PATH {_sql_string(location.data_path)})"
        )
        con.execute(f"USE {LAKE_ALIAS}")
    except duckdb.Error as exc:
        con.close()
        secrets = (location.password, environ.get("AWS_SECRET_ACCESS_KEY"), environ.get("AWS_SESSION_TOKEN"))
        raise StoreUnavailable(f"cannot open the lake {location.describe()}: {redacted(str(exc), secrets)}") from exc
    return con


def redacted(text: str, secrets: Sequence[str | None]) -> str:
    """`text` (an error that may quote a connection string) without any of the secrets."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def ensure_tables(con: duckdb.DuckDBPyConnection, location: LakeLocation, *, read_only: bool) -> None:
    """Create the lake's tables if it has none, and those a later Fluoro added if it is older
    (once, under an advisory lock: collectors may start together); a reader only checks that
    the tables are there."""
    if _has_tables(con):
        if not read_only and _missing_later_tables(con):
            _create_locked(con, location, lambda: [s for made in _missing_later_tables(con) for s in made])
        return
    if read_only:
        raise StoreUnavailable(
            f"the lake {location.describe()} has no Fluoro tables yet: start a collector on it first"
        )
    # another collector may have created them while this one waited for the lock
    _create_locked(con, location, lambda: [] if _has_tables(con) else list(lake_sql.CREATE_TABLES))


def _missing_later_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, ...]]:
    """The statements of the tables and columns a later Fluoro added that this lake lacks."""
    tables: list[tuple[str, ...]] = [
        made for name, made in lake_sql.LATER_TABLES if not con.execute(lake_sql.TABLE_EXISTS, [name]).fetchall()[0][0]
    ]
    columns: list[tuple[str, ...]] = [
        (made,)
        for table, column, made in lake_sql.LATER_COLUMNS
        if not con.execute(lake_sql.COLUMN_EXISTS, [table, column]).fetchall()[0][0]
    ]
    return tables + columns


def _create_locked(con: duckdb.DuckDBPyConnection, location: LakeLocation, statements: Callable[[], list[str]]) -> None:
    """Run the `statements` (asked for once the schema lock is held) in one transaction."""
    import psycopg  # here: only a lake needs PostgreSQL's driver (~9 MiB a daemon does not carry otherwise)

    try:
        holder = with_lock(location.libpq(), SCHEMA_KEY, location.password)
    except psycopg.Error as exc:
        message = redacted(str(exc), (location.password,))
        raise StoreUnavailable(f"cannot lock the lake {location.describe()}: {message}") from exc
    try:
        wanted = statements()
        if not wanted:
            return
        con.execute("BEGIN")
        for statement in wanted:
            con.execute(statement)
        con.execute("COMMIT")
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise StoreUnavailable(f"cannot create the tables of the lake {location.describe()}: {exc}") from exc
    finally:
        holder.close()


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    (count,) = con.execute(lake_sql.TABLES_EXIST).fetchall()[0]
    return bool(count)

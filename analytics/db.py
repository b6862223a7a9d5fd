"""The analytics database: a local DuckDB file of views over the Parquet ledger.

Nothing is copied: `ledger_raw` reads the part files (hive-partitioned, union_by_name so older
parts with fewer columns still read) every time a view is queried, so reports are always current.
A column that no part holds yet (a ledger written before `labels` existed) is added as NULL of
its type, so every view reads one shape whatever the age of the parts.
The ledger's location is configuration, not user input; it is the only literal in the SQL and is
quoted. Every query that takes input binds parameters. Reports open the file read-only.
The ledger is a folder (the home is a local or shared folder; only the archive goes to an object
store).
"""

from pathlib import Path

import duckdb
import pyarrow as pa

from models import LEDGER_SCHEMA
from storage.ledger import ledger_parts

VIEWS = Path(__file__).with_name("views.sql")
VIEW_NAMES = ("spend_by_day", "clips", "unit_costs", "hidden_costs", "latency",
              "quality_rates", "continuation_savings")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ledger_glob(ledger: str) -> str:
    return ledger.rstrip("/") + "/**/*.parquet"


def build(database: Path, ledger: str) -> list[str]:
    """(Re)create the views in `database` over the ledger at `ledger` (a folder); returns the
    part files skipped as unreadable (the views read every other one)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    readable, unreadable = ledger_parts(Path(ledger))
    with duckdb.connect(str(database)) as con:
        if not readable:
            source = _empty_ledger()
        elif not unreadable:
            source = (f"read_parquet({_quote(ledger_glob(ledger))}, hive_partitioning = true,"
                      " union_by_name = true)")
        else:  # name the good parts: one bad file must not take the report with it
            files = ", ".join(_quote(str(p)) for p in readable)
            source = (f"read_parquet([{files}], hive_partitioning = true, "
                      "union_by_name = true)")
        con.execute(f"CREATE OR REPLACE VIEW ledger_raw AS SELECT * FROM {source}")
        present = {row[0] for row in con.execute("DESCRIBE ledger_raw").fetchall()}
        missing = [_null_column(f) for f in LEDGER_SCHEMA if f.name not in present]
        if missing:
            con.execute(f"CREATE OR REPLACE VIEW ledger_raw AS SELECT *, {', '.join(missing)} "
                        f"FROM {source}")
        con.execute(VIEWS.read_text(encoding="utf-8"))
    return [str(p) for p in unreadable]


def connect(database: Path, ledger: str, *, read_only: bool = True
            ) -> duckdb.DuckDBPyConnection:
    """A connection for reports (read-only by default), views built if missing."""
    if not database.exists():
        build(database, ledger)
    con = duckdb.connect(str(database), read_only=read_only)
    con.execute("SET enable_progress_bar = false")  # reports print their own output
    return con


# the ledger's arrow types as DuckDB names them
_TYPES = {"string": "VARCHAR", "bool": "BOOLEAN", "int64": "BIGINT", "double": "DOUBLE",
          "decimal128(18, 6)": "DECIMAL(18, 6)", "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
          "map<string, string>": "MAP(VARCHAR, VARCHAR)"}


def _null_column(field: pa.Field) -> str:
    """A column of the schema as NULL of its type (field names are the schema's, not input)."""
    return f"CAST(NULL AS {_TYPES[str(field.type)]}) AS {field.name}"


def _empty_ledger() -> str:
    """A typed empty relation with the ledger's columns, for a home with no charges yet."""
    columns = ", ".join(_null_column(f) for f in LEDGER_SCHEMA)
    return f"(SELECT {columns} WHERE false)"

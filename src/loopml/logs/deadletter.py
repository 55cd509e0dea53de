"""The dead-letter log: every rejected row, kept with the reason and where it came from.

Rows are stored as JSON text exactly as received (a bad value stays visible), with a
reason that names the field and the fix, the source (``python``, ``file:<path>``, a
collector name...) and the time it was received, partitioned by that day. Nothing that
fails validation is ever silently dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopml.core.clock import utcnow

if TYPE_CHECKING:
    import pandas as pd

DEAD_LETTER = "_dead_letter"

#: Columns of the dead-letter log and their SQL types.
DEAD_COLUMNS = {
    "received_at": "TIMESTAMPTZ",
    "event_type": "VARCHAR",
    "source": "VARCHAR",
    "reason": "VARCHAR",
    "row": "VARCHAR",
}


def dead_rows(
    rows: pd.DataFrame | None,
    event_type: str,
    reasons: Any,
    source: str,
    raw: list[str] | None = None,
) -> pd.DataFrame:
    """Rejected rows in dead-letter form; ``raw`` is the text of lines that never parsed.

    >>> import pandas as pd
    >>> dead = dead_rows(pd.DataFrame({"event_id": ["e1"], "ts": ["later"]}), "click",
    ...                  ["click v1: field 'ts' must be a timestamp"], "python")
    >>> dead["row"].tolist()
    ['{"event_id":"e1","ts":"later"}']
    """
    import pandas as pd

    if raw is not None:
        json_rows = raw
    else:
        text = rows.to_json(orient="records", lines=True, date_format="iso", default_handler=str)
        json_rows = text.splitlines()
    return pd.DataFrame(
        {
            "received_at": pd.Series([utcnow()] * len(json_rows), dtype="datetime64[us, UTC]"),
            "event_type": event_type,
            "source": source,
            "reason": list(reasons),
            "row": json_rows,
        }
    )


def dead_letter_table(rows: pd.DataFrame) -> Any:
    """The Arrow table written to ``_dead_letter/date=.../part-*.parquet``."""
    import pyarrow as pa

    schema = pa.schema(
        [("received_at", pa.timestamp("us", tz="UTC"))]
        + [(c, pa.string()) for c in ("event_type", "source", "reason", "row")]
    )
    frame = rows.reset_index(drop=True)[list(DEAD_COLUMNS)]
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)

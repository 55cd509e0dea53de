"""Typed, versioned event schemas (seed 000 §4.3: user info, content info, behaviour logs).

Every event has ``event_id`` (unique, used for de-duplication), ``ts`` (UTC) and
``schema_version``. A later schema version may only *add* optional fields, so old
partitions stay readable; how models cope with the added field is the job of
:mod:`loopml.logs.evolution` (keep old features, backfill, or one model per schema).

The simulated world writes exactly these columns, and so does loopml itself for
``prediction`` and ``feedback`` events.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopml.core.errors import NotFoundError, did_you_mean

#: Column types, as Arrow type names, that the validator and writer understand.
TYPES = ("string", "int64", "float64", "bool", "timestamp")


@dataclass(frozen=True)
class Field:
    """One column of an event: its Arrow type, whether it may be missing, and why it exists."""

    name: str
    type: str
    required: bool = True
    doc: str = ""


@dataclass(frozen=True)
class EventSchema:
    """One version of one event type."""

    event_type: str
    version: int
    fields: tuple[Field, ...]
    doc: str = ""

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise NotFoundError(
            f"event {self.event_type} v{self.version} has no field {name!r}; "
            f"{did_you_mean(name, self.columns)}"
        )


_COMMON = (
    Field("event_id", "string", doc="unique id; redelivered events with the same id count once"),
    Field("ts", "timestamp", doc="when the event happened, UTC"),
)

_SCHEMAS: tuple[EventSchema, ...] = (
    EventSchema(
        "user",
        1,
        (
            *_COMMON,
            Field("user_id", "string"),
            Field("country", "string"),
            Field("age_band", "string", doc="e.g. '18-24'"),
            Field("segment", "string", doc="acquisition cohort; the sim adds a new one mid-way"),
            Field("signup_ts", "timestamp"),
        ),
        "user info snapshot (written on sign-up and on change)",
    ),
    EventSchema(
        "item",
        1,
        (
            *_COMMON,
            Field("item_id", "string"),
            Field("category", "string"),
            Field("publisher", "string"),
            Field("length_s", "float64", required=False, doc="content length in seconds"),
            Field("created_ts", "timestamp"),
        ),
        "content info snapshot",
    ),
    EventSchema(
        "impression",
        1,
        (
            *_COMMON,
            Field("request_id", "string", doc="one feed request shows several items"),
            Field("user_id", "string"),
            Field("item_id", "string"),
            Field("position", "int64", doc="0-based slot in the feed; drives position bias"),
        ),
        "an item was shown to a user",
    ),
    EventSchema(
        "impression",
        2,
        (
            *_COMMON,
            Field("request_id", "string"),
            Field("user_id", "string"),
            Field("item_id", "string"),
            Field("position", "int64"),
            Field("device", "string", required=False, doc="added in v2 (log format change)"),
        ),
        "v2 adds the client device",
    ),
    EventSchema(
        "click",
        1,
        (
            *_COMMON,
            Field("impression_id", "string", doc="event_id of the impression clicked"),
            Field("user_id", "string"),
            Field("item_id", "string"),
        ),
        "a shown item was clicked",
    ),
    EventSchema(
        "conversion",
        1,
        (
            *_COMMON,
            Field("impression_id", "string"),
            Field("user_id", "string"),
            Field("item_id", "string"),
            Field("value", "float64", required=False, doc="e.g. revenue"),
        ),
        "a click led to a conversion (often days later)",
    ),
    EventSchema(
        "prediction",
        1,
        (
            *_COMMON,
            Field("request_id", "string"),
            Field("model", "string"),
            Field("version", "int64"),
            Field("inputs", "string", doc="JSON of the input features (sampled)"),
            Field("output", "float64", required=False, doc="score / probability of class 1"),
            Field("outputs", "string", required=False, doc="JSON when the output is not scalar"),
            Field("latency_ms", "float64", required=False),
            Field("arm", "string", required=False, doc="rollout arm, when an experiment routed"),
            Field("entity_id", "string", required=False, doc="user or unit id, when known"),
        ),
        "written by loopml's serving for monitoring",
    ),
    EventSchema(
        "feedback",
        1,
        (
            *_COMMON,
            Field("request_id", "string", doc="the prediction this outcome belongs to"),
            Field("metric", "string", doc="'click', 'conversion', or any named outcome"),
            Field("value", "float64"),
            Field("entity_id", "string", required=False),
        ),
        "an outcome joined later to a prediction (delayed label)",
    ),
)


def all_schemas() -> tuple[EventSchema, ...]:
    """Every known (event type, version)."""
    return _SCHEMAS


def event_types() -> list[str]:
    return sorted({s.event_type for s in _SCHEMAS})


def get_schema(event_type: str, version: int | None = None) -> EventSchema:
    """The schema for ``event_type`` at ``version`` (latest when None).

    >>> get_schema("impression").version
    2
    >>> get_schema("impresion")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.NotFoundError: unknown event type 'impresion'; did you mean 'impression'? ...
    """
    versions = [s for s in _SCHEMAS if s.event_type == event_type]
    if not versions:
        raise NotFoundError(
            f"unknown event type {event_type!r}; {did_you_mean(event_type, event_types())}",
            field="event_type",
        )
    if version is None:
        return max(versions, key=lambda s: s.version)
    for s in versions:
        if s.version == version:
            return s
    have = ", ".join(str(s.version) for s in versions)
    raise NotFoundError(
        f"event type {event_type!r} has no schema version {version}; {have} exist",
        field="schema_version",
    )


def versions(event_type: str) -> list[EventSchema]:
    """Every schema version of ``event_type``, oldest first.

    >>> [s.version for s in versions("impression")]
    [1, 2]
    """
    get_schema(event_type)  # raises with a did-you-mean for an unknown type
    return sorted((s for s in _SCHEMAS if s.event_type == event_type), key=lambda s: s.version)


def all_fields(event_type: str) -> dict[str, Field]:
    """The union of fields over every version, in first-seen order (what the SQL view exposes).

    >>> list(all_fields("impression"))[-1]
    'device'
    """
    out: dict[str, Field] = {}
    for schema in versions(event_type):
        for f in schema.fields:
            out.setdefault(f.name, f)
    return out


def introduced_in(event_type: str, field: str) -> int:
    """The first schema version that has ``field``.

    >>> introduced_in("impression", "device")
    2
    """
    for schema in versions(event_type):
        if field in schema.columns:
            return schema.version
    raise NotFoundError(
        f"event {event_type} has no field {field!r} in any schema version; "
        f"{did_you_mean(field, list(all_fields(event_type)))}",
        field=field,
    )


#: DuckDB column type for each schema type, used to type empty views and casts.
SQL_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}


def arrow_type(type_name: str):  # noqa: ANN201 - pyarrow is imported lazily
    """The Arrow type stored in Parquet for a schema type (timestamps: microseconds, UTC)."""
    import pyarrow as pa

    return {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }[type_name]

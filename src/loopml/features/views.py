"""Feature views: named, versioned definitions of features computed from events.

A view has one entity key (``user_id`` or ``item_id``) and a tuple of features of six
plain kinds: windowed :class:`Count`, :class:`Sum` and smoothed :class:`Rate`;
:class:`Recency` (seconds since the last event); :class:`Latest` (a snapshot attribute
such as a user's country) and :class:`Age` (time since a timestamp attribute). The same
definition feeds training sets (point-in-time) and the online store (latest values),
so offline and online values match by construction.

A definition change gets a new ``version``; training sets record the versions they used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from loopml.core.errors import NotFoundError, ValidationError, did_you_mean
from loopml.core.names import check_name
from loopml.features.windows import window_seconds
from loopml.logs.schemas import all_fields


@dataclass(frozen=True)
class Count:
    """How many ``event`` rows the entity had in the ``window`` before t."""

    name: str
    event: str
    window: str


@dataclass(frozen=True)
class Sum:
    """The sum of a numeric ``column`` of ``event`` in the ``window`` before t."""

    name: str
    event: str
    column: str
    window: str


@dataclass(frozen=True)
class Rate:
    """``(numerator + prior * weight) / (denominator + weight)`` over one window.

    The pseudo-count ``weight`` pulls entities with little history toward ``prior`` (a
    new item with 1 click in 1 impression is not a 100% CTR). NULL when both are zero.
    """

    name: str
    numerator: str
    denominator: str
    window: str
    prior: float = 0.0
    weight: float = 0.0


@dataclass(frozen=True)
class Recency:
    """Seconds since the entity's last ``event`` before t; NULL if it never had one."""

    name: str
    event: str


@dataclass(frozen=True)
class Latest:
    """The value of ``column`` in the entity's latest ``event`` before t (a snapshot)."""

    name: str
    event: str
    column: str


@dataclass(frozen=True)
class Age:
    """Days from the latest ``column`` timestamp (e.g. ``created_ts``) of ``event`` to t."""

    name: str
    event: str
    column: str


Feature = Count | Sum | Rate | Recency | Latest | Age


@dataclass(frozen=True)
class FeatureView:
    """A named, versioned set of features about one entity.

    >>> view = FeatureView("clicks", 1, "user_id", "user clicks", (Count("n_1d", "click", "1d"),))
    >>> view.columns
    ['clicks__n_1d']
    """

    name: str
    version: int
    entity: str
    description: str
    features: tuple[Feature, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_name(self.name, "feature view name")
        if not isinstance(self.version, int) or self.version < 1:
            raise ValidationError(
                f"feature view {self.name}: version must be an integer >= 1, got {self.version!r}",
                field="version",
            )
        if not self.features:
            raise ValidationError(f"feature view {self.name} defines no features", field="features")
        names = [f.name for f in self.features]
        for f in self.features:
            check_name(f.name, f"feature name in view {self.name}")
            if names.count(f.name) > 1:
                raise ValidationError(
                    f"feature view {self.name} defines {f.name!r} twice; names must be unique",
                    field=f.name,
                )
            self._check(f)

    def _check(self, f: Feature) -> None:
        for event in _events_of(f):
            fields = all_fields(event)  # raises for an unknown event type
            if self.entity not in fields:
                raise ValidationError(
                    f"feature {self.name}.{f.name}: event {event!r} has no entity column "
                    f"{self.entity!r}; use a view keyed by one of {sorted(fields)}",
                    field=f.name,
                )
        if isinstance(f, Count | Sum | Rate):
            window_seconds(f.window, f"feature {self.name}.{f.name} window")
        if isinstance(f, Sum | Latest | Age):
            spec = all_fields(f.event).get(f.column)
            if spec is None:
                raise ValidationError(
                    f"feature {self.name}.{f.name}: event {f.event!r} has no column "
                    f"{f.column!r}; {did_you_mean(f.column, list(all_fields(f.event)))}",
                    field=f.name,
                )
            wanted = {Sum: ("int64", "float64"), Age: ("timestamp",)}.get(type(f))
            if wanted and spec.type not in wanted:
                raise ValidationError(
                    f"feature {self.name}.{f.name}: column {f.event}.{f.column} is "
                    f"{spec.type}; {type(f).__name__} needs {' or '.join(wanted)}",
                    field=f.name,
                )
        if isinstance(f, Rate) and (f.weight < 0 or not 0 <= f.prior <= 1e9):
            raise ValidationError(
                f"feature {self.name}.{f.name}: weight must be >= 0 and prior >= 0, got "
                f"weight={f.weight}, prior={f.prior}",
                field=f.name,
            )

    @property
    def columns(self) -> list[str]:
        """Output column names, ``<view>__<feature>``, so views never collide."""
        return [f"{self.name}__{f.name}" for f in self.features]

    @property
    def events(self) -> list[str]:
        """Event types this view reads."""
        return sorted({e for f in self.features for e in _events_of(f)})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able definition (recorded in model lineage)."""
        data = asdict(self)
        data["features"] = [{"kind": type(f).__name__, **asdict(f)} for f in self.features]
        return data


def _events_of(f: Feature) -> tuple[str, ...]:
    if isinstance(f, Rate):
        return (f.numerator, f.denominator)
    return (f.event,)


class FeatureCatalog:
    """An explicit list of feature views, looked up by name and version.

    >>> catalog = default_catalog()
    >>> catalog.get("user_activity").version
    1
    >>> catalog.get("user_activity", 3)
    Traceback (most recent call last):
    ...
    loopml.core.errors.NotFoundError: feature view user_activity has no version 3; 1 exists
    """

    def __init__(self, views: list[FeatureView] | tuple[FeatureView, ...]) -> None:
        self.views = list(views)
        keys = [(v.name, v.version) for v in self.views]
        for key in keys:
            if keys.count(key) > 1:
                raise ValidationError(
                    f"feature view {key[0]} version {key[1]} is listed twice", field=key[0]
                )

    def names(self) -> list[str]:
        return sorted({v.name for v in self.views})

    def get(self, name: str, version: int | None = None) -> FeatureView:
        """The view ``name`` at ``version`` (latest when None)."""
        found = sorted((v for v in self.views if v.name == name), key=lambda v: v.version)
        if not found:
            raise NotFoundError(
                f"no feature view {name!r}; {did_you_mean(name, self.names())}", view=name
            )
        if version is None:
            return found[-1]
        for view in found:
            if view.version == version:
                return view
        have = [str(v.version) for v in found]
        listed = have[0] if len(have) == 1 else f"{', '.join(have[:-1])} and {have[-1]}"
        verb = "exists" if len(have) == 1 else "exist"
        raise NotFoundError(
            f"feature view {name} has no version {version}; {listed} {verb}", view=name
        )

    def __iter__(self):  # noqa: ANN204
        return iter(self.views)

    def __len__(self) -> int:
        return len(self.views)


def default_catalog() -> FeatureCatalog:
    """The views of the ad-feed example (``loopml.sim``): activity, popularity, profiles."""
    return FeatureCatalog(
        [
            FeatureView(
                "user_activity",
                1,
                "user_id",
                "how much the user saw and clicked lately",
                (
                    Count("impressions_7d", "impression", "7d"),
                    Count("clicks_7d", "click", "7d"),
                    Rate("ctr_7d", "click", "impression", "7d", prior=0.03, weight=20.0),
                    Count("clicks_1d", "click", "1d"),
                    Recency("secs_since_last_click", "click"),
                ),
            ),
            FeatureView(
                "item_popularity",
                1,
                "item_id",
                "how often the item was shown and clicked lately, and how old it is",
                (
                    Count("impressions_7d", "impression", "7d"),
                    Count("clicks_7d", "click", "7d"),
                    Rate("ctr_7d", "click", "impression", "7d", prior=0.03, weight=50.0),
                    Age("age_days", "item", "created_ts"),
                ),
            ),
            FeatureView(
                "user_profile",
                1,
                "user_id",
                "who the user is (latest user snapshot)",
                (
                    Latest("country", "user", "country"),
                    Latest("age_band", "user", "age_band"),
                    Latest("segment", "user", "segment"),
                ),
            ),
            FeatureView(
                "item_profile",
                1,
                "item_id",
                "what the item is (latest item snapshot)",
                (
                    Latest("category", "item", "category"),
                    Latest("publisher", "item", "publisher"),
                    Latest("length_s", "item", "length_s"),
                ),
            ),
        ]
    )

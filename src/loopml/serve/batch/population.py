"""Who a batch job scores, with the features each row needs as of the score date.

Populations are built from the event log: users active in the week before the score
date, optionally crossed with the most-shown items of that week (the candidates a feed
would rank). Features come from the same feature views and point-in-time joins as
training, so batch scores use exactly the feature definitions the model learnt from.
Columns that are request context rather than features (position, hour, device) take
the values of ``context``: a feed scored overnight ranks items as if shown at the top.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopml.core.errors import ValidationError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from loopml.core.signature import Signature
    from loopml.logs.eventlog import EventLog

POPULATIONS = ("active_users_x_top_items", "active_users")

#: Context columns a model may read that are not feature views, with batch defaults.
DEFAULT_CONTEXT: dict[str, Any] = {"position": 0, "hour": 20, "device": None}


def build_population(
    log: EventLog,
    signature: Signature,
    *,
    score_date: str,
    population: str = "active_users_x_top_items",
    top_items: int = 20,
    active_days: int = 7,
    context: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Rows to score: ``user_id``, ``item_id`` and every column of ``signature``."""
    import pandas as pd

    from loopml.features.pointintime import point_in_time
    from loopml.features.views import default_catalog

    if population not in POPULATIONS:
        raise ValidationError(
            f"unknown population {population!r}; {did_you_mean(population, POPULATIONS)}",
            field="population",
        )
    as_of = pd.Timestamp(dt.date.fromisoformat(score_date), tz="UTC")
    since = as_of - pd.Timedelta(days=active_days)
    params = {"lo": since.to_pydatetime(), "hi": as_of.to_pydatetime()}
    con = log.connect(("impression",))
    try:
        users = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT user_id FROM impression WHERE ts >= $lo AND ts < $hi ORDER BY 1",
                params,
            ).fetchall()
        ]
        items = [""]
        if population == "active_users_x_top_items":
            items = [
                r[0]
                for r in con.execute(
                    "SELECT item_id FROM impression WHERE ts >= $lo AND ts < $hi GROUP BY 1 "
                    "ORDER BY count(*) DESC, item_id LIMIT $k",
                    {**params, "k": int(top_items)},
                ).fetchall()
            ]
    finally:
        con.close()
    if not users:
        raise ValidationError(
            f"no active users in the {active_days} days before {score_date}: the event log has "
            "no impressions then; pick a --date just after logged days",
            field="score_date",
        )
    frame = pd.DataFrame(
        {
            "user_id": pd.Series(users, dtype="str").repeat(len(items)).to_numpy(),
            "item_id": items * len(users),
            "ts": as_of,
        }
    )
    ctx = {**DEFAULT_CONTEXT, **(context or {})}
    catalog = default_catalog()
    wanted_views: dict[str, Any] = {}
    for name in signature.names:
        view, sep, _ = name.partition("__")
        if sep:
            wanted_views.setdefault(view, catalog.get(view))
        elif name in ctx:
            frame[name] = ctx[name]
        elif name not in frame.columns:
            raise ValidationError(
                f"the model reads {name!r}, which is neither a feature view column "
                f"('<view>__<feature>') nor a context column ({sorted(ctx)}); pass it in "
                "context={...}",
                field=name,
            )
    if population == "active_users":
        for view in list(wanted_views.values()):
            if view.entity == "item_id":
                raise ValidationError(
                    f"population 'active_users' has no items but the model reads item view "
                    f"{view.name!r}; use active_users_x_top_items",
                    field="population",
                )
    if wanted_views:
        frame = point_in_time(log, list(wanted_views.values()), frame, progress=progress)
    return frame.drop(columns=["ts"])

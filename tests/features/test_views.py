"""Feature view definitions and the catalog: checked at definition time, found by name."""

from __future__ import annotations

import pytest

from loopml.core.errors import NotFoundError, ValidationError
from loopml.features.views import (
    Age,
    Count,
    FeatureCatalog,
    FeatureView,
    Latest,
    Rate,
    Recency,
    Sum,
    default_catalog,
)
from loopml.features.windows import window_seconds


def _view(version: int = 1, *features) -> FeatureView:
    return FeatureView(
        "user_activity", version, "user_id", "test", features or (Count("n", "click", "1d"),)
    )


def test_default_catalog_has_the_four_views_with_their_features():
    catalog = default_catalog()
    assert catalog.names() == ["item_popularity", "item_profile", "user_activity", "user_profile"]
    assert catalog.get("user_activity").columns == [
        "user_activity__impressions_7d",
        "user_activity__clicks_7d",
        "user_activity__ctr_7d",
        "user_activity__clicks_1d",
        "user_activity__secs_since_last_click",
    ]
    assert [f.name for f in catalog.get("item_popularity").features] == [
        "impressions_7d",
        "clicks_7d",
        "ctr_7d",
        "age_days",
    ]
    assert [f.name for f in catalog.get("user_profile").features] == [
        "country",
        "age_band",
        "segment",
    ]
    assert [f.name for f in catalog.get("item_profile").features] == [
        "category",
        "publisher",
        "length_s",
    ]
    assert catalog.get("user_activity").events == ["click", "impression"]


def test_catalog_lookup_by_version_and_helpful_errors():
    catalog = FeatureCatalog([_view(1), _view(2)])
    assert catalog.get("user_activity").version == 2
    assert catalog.get("user_activity", 1).version == 1
    with pytest.raises(NotFoundError) as err:
        catalog.get("user_activity", 3)
    assert str(err.value) == "feature view user_activity has no version 3; 1 and 2 exist"
    with pytest.raises(NotFoundError, match="did you mean 'user_activity'"):
        catalog.get("user_activty")
    with pytest.raises(ValidationError, match="listed twice"):
        FeatureCatalog([_view(1), _view(1)])


def test_definitions_are_validated_when_written():
    with pytest.raises(NotFoundError, match="unknown event type 'clik'"):
        _view(1, Count("n", "clik", "1d"))
    with pytest.raises(ValidationError, match="has no entity column 'user_id'"):
        FeatureView("items", 1, "user_id", "", (Latest("cat", "item", "category"),))
    with pytest.raises(ValidationError, match="window '7 days' is not understood"):
        _view(1, Count("n", "click", "7 days"))
    with pytest.raises(ValidationError, match="Sum needs int64 or float64"):
        _view(1, Sum("s", "click", "item_id", "1d"))
    with pytest.raises(ValidationError, match="Age needs timestamp"):
        FeatureView("items", 1, "item_id", "", (Age("a", "item", "category"),))
    with pytest.raises(ValidationError, match="has no column 'colour'"):
        FeatureView("items", 1, "item_id", "", (Latest("c", "item", "colour"),))
    with pytest.raises(ValidationError, match="defines 'n' twice"):
        _view(1, Count("n", "click", "1d"), Recency("n", "click"))
    with pytest.raises(ValidationError, match="version must be an integer >= 1"):
        _view(0)
    with pytest.raises(ValidationError, match="defines no features"):
        FeatureView("empty", 1, "user_id", "", ())
    with pytest.raises(ValidationError, match="not allowed"):
        FeatureView("../evil", 1, "user_id", "", (Count("n", "click", "1d"),))
    with pytest.raises(ValidationError, match="weight must be >= 0"):
        _view(1, Rate("r", "click", "impression", "1d", prior=0.1, weight=-1))


def test_to_dict_records_the_full_definition_for_lineage():
    data = default_catalog().get("user_activity").to_dict()
    assert data["name"] == "user_activity" and data["version"] == 1
    assert data["features"][2] == {
        "kind": "Rate",
        "name": "ctr_7d",
        "numerator": "click",
        "denominator": "impression",
        "window": "7d",
        "prior": 0.03,
        "weight": 20.0,
    }


def test_windows():
    assert [window_seconds(w) for w in ("90s", "30m", "1h", "1d", "2w")] == [
        90,
        1800,
        3600,
        86400,
        1209600,
    ]
    with pytest.raises(ValidationError):
        window_seconds("0d")

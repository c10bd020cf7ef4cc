"""Views encoded once per event when two subscriptions release the same: the bytes after
the wire header are shared only when the view schemas write alike and the values are the
same values of the same types."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from broker.policy_holder import PolicyHolder
from broker.router_batch import same_record, view_shape
from broker.topics import delivery_topic
from schemas.wire import HEADER_SIZE
from tests.unit.broker.test_router import DEMO_POLICY, KEY, birth, route_all, routing

UTC = dt.UTC


@pytest.mark.parametrize(("a", "b"), [
    ({"n": 1}, {"n": True}),
    ({"n": 1}, {"n": 1.0}),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ({"x": {"y": "v"}}, {"x": {"y": "w"}}),
    ({"x": [1, 2]}, {"x": [1, 2, 3]}),
    ({"t": dt.datetime(2026, 1, 1, tzinfo=UTC)},
     {"t": dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))}),
    ({"d": Decimal("1.0")}, {"d": Decimal("1.0")}),
    ({"f": float("nan")}, {"f": float("nan")}),
])
def test_values_that_could_write_differently_are_not_the_same(a: Any, b: Any) -> None:
    assert not same_record(a, b)


def test_equal_values_of_equal_types_in_the_same_order_are_the_same() -> None:
    shared = {"sex": "FEMALE"}
    a = {"id": "p_1", "n": 7, "ok": None, "child": shared, "at": dt.date(2026, 1, 2),
         "tags": ["a", "b"], "t": dt.datetime(2026, 1, 1, tzinfo=UTC)}
    b = {"id": "p_" + "1", "n": 7, "ok": None, "child": dict(shared),
         "at": dt.date(2026, 1, 2), "tags": ["a", "b"], "t": dt.datetime(2026, 1, 1, tzinfo=UTC)}
    assert same_record(a, b)


def _view(namespace: str, doc: str, **changes: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"name": "n", "type": ["null", "int"], "default": None,
                             "doc": f"{doc} field"}
    field.update(changes)
    return {"type": "record", "name": "Birth", "namespace": namespace, "doc": doc,
            "fields": [field, {"name": "sex", "type": {
                "type": "enum", "name": "Sex", "symbols": ["F", "M"], "doc": doc}}]}


def test_view_schemas_differing_by_namespace_and_docs_have_one_shape() -> None:
    assert view_shape(_view("handoff.view.a", "for a")) == \
        view_shape(_view("handoff.view.b", "for b"))


@pytest.mark.parametrize("changes", [
    {"type": ["null", "long"]}, {"default": 3, "type": ["int", "null"]}, {"name": "m"},
    {"default": {"doc": "a default is kept whole"}}])
def test_view_schemas_that_write_differently_have_different_shapes(
        changes: dict[str, Any]) -> None:
    assert view_shape(_view("handoff.view.a", "x")) != \
        view_shape(_view("handoff.view.a", "x", **changes))


def test_two_subscriptions_released_the_same_get_the_same_bytes_under_their_own_schema(
        tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    shutil.copytree(DEMO_POLICY, policy)
    with (policy / "subscriptions.yaml").open("a") as out:
        out.write("\n  - id: hv-births-copy\n    agency: hv-nfp\n    event_types: [birth]\n"
                  "    purpose: care_coordination\n    sources: [county-general]\n"
                  "    delivery: stream\n")
    r = routing(lambda catalog, views: PolicyHolder(policy, catalog, KEY, views))
    r.publish(birth("MPI-1"), birth("MPI-2", mother={**birth("x")["mother"],
                                                     "first_name": "Ngoc"}))
    route_all(r)
    original = {dict(rec.headers)["handoff.event_id"]: rec
                for rec in r.log.records(delivery_topic("hv-births"))}
    copies = {dict(rec.headers)["handoff.event_id"]: rec
              for rec in r.log.records(delivery_topic("hv-births-copy"))}
    assert set(original) == set(copies) and len(original) == 2
    for event_id, rec in original.items():
        copy = copies[event_id]
        assert copy.value[HEADER_SIZE:] == rec.value[HEADER_SIZE:]
        (id_a, view_a), (id_b, view_b) = r.codec.decode(rec.value), r.codec.decode(copy.value)
        assert id_a != id_b and view_a == view_b
    # Each event's own values: the second mother's name is not the first's.
    views = {e: r.codec.decode(rec.value)[1] for e, rec in copies.items()}
    assert views[b"evt-MPI-1"]["mother"]["first_name"] == "Jolene"
    assert views[b"evt-MPI-2"]["mother"]["first_name"] == "Ngoc"

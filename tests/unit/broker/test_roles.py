"""Roles of a `handoff serve` process: how they are read, and what each serves."""

from __future__ import annotations

import pytest

from broker.api import routes_events, routes_ops, routes_subscriptions
from broker.api.app import route_modules
from broker.roles import Part, RoleError, Roles


@pytest.mark.parametrize(("text", "parts"), [
    ("all", set(Part)),
    ("api", {Part.API}),
    ("router", {Part.ROUTER}),
    ("api,delivery", {Part.API, Part.DELIVERY}),
    (" Delivery , api ", {Part.API, Part.DELIVERY}),
    ("api,delivery,router", set(Part)),
])
def test_roles_are_read_from_the_command_line(text: str, parts: set[Part]) -> None:
    assert Roles.parse(text).parts == parts


@pytest.mark.parametrize(("text", "problem"), [
    ("", "needs a value"),
    ("courier", "unknown role 'courier'"),
    ("all,router", "unknown role 'all'"),
])
def test_a_role_that_is_not_one_is_refused(text: str, problem: str) -> None:
    with pytest.raises(RoleError, match=problem):
        Roles.parse(text)


def test_roles_print_as_they_are_written() -> None:
    assert str(Roles.parse("router,api")) == "api,router"
    assert str(Roles.parse("api,delivery,router")) == "all"


def test_each_role_serves_its_own_routes_and_every_one_serves_health() -> None:
    assert route_modules(Roles.parse("router")) == [routes_ops]
    api = route_modules(Roles.parse("api"))
    assert routes_events in api and routes_subscriptions not in api
    delivery = route_modules(Roles.parse("delivery"))
    assert routes_subscriptions in delivery and routes_events not in delivery
    assert all(routes_ops in route_modules(Roles.parse(r)) for r in ("api", "delivery", "all"))

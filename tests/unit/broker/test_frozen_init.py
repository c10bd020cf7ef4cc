"""`quick_init` gives a frozen dataclass a faster `__init__` that behaves as the
generated one: same parameters and defaults, same errors, still frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from broker.delivery.cursor import Cursor
from broker.delivery.envelope import DeliveryEnvelope
from broker.frozen_init import quick_init
from broker.log.port import LogRecord


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str
    c: tuple[int, ...] = ()
    d: object = None


Quick = quick_init(dataclass(frozen=True, slots=True)(type("Quick", (), {
    "__annotations__": dict(Plain.__annotations__), "c": (), "d": None})))


def test_it_takes_the_same_arguments_and_gives_the_same_values() -> None:
    for args, kwargs in [((1, "x"), {}), ((1, "x", (2,)), {}), ((), {"b": "y", "a": 2}),
                         ((3,), {"b": "z", "d": [1]}), ((1, "x", (), 5), {})]:
        plain, quick = Plain(*args, **kwargs), Quick(*args, **kwargs)
        assert dataclasses.astuple(plain) == dataclasses.astuple(quick)
        assert repr(quick) == repr(plain).replace("Plain", "Quick")
    assert Quick(1, "x") == Quick(1, "x") and hash(Quick(1, "x")) == hash(Quick(1, "x"))


def test_it_refuses_what_the_generated_init_refuses() -> None:
    for args, kwargs in [((), {}), ((1,), {}), ((1, "x", (), None, 9), {}),
                         ((1, "x"), {"a": 2}), ((1, "x"), {"e": 1})]:
        with pytest.raises(TypeError):
            Plain(*args, **kwargs)
        with pytest.raises(TypeError):
            Quick(*args, **kwargs)


def test_objects_stay_frozen() -> None:
    for value in (Quick(1, "x"), Cursor((1, 2)), LogRecord("t", 0, 1, None, b"", (), 5),
                  DeliveryEnvelope("e", "d", "birth", "s", 1, 2, (), ())):
        name = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
        with pytest.raises(FrozenInstanceError):
            setattr(value, name, None)


def test_only_frozen_slotted_dataclasses_with_a_plain_init_are_taken() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (NoSlots, NotFrozen, Factory, PostInit, int):
        with pytest.raises(TypeError):
            quick_init(cls)

from __future__ import annotations

import types
import typing

import respflow
from respflow import _events


def test_all_is_sorted_and_complete() -> None:
    assert respflow.__all__ == sorted(respflow.__all__, key=lambda n: (not n.isupper(), n))
    public = {
        name
        for name, value in vars(respflow).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(respflow.__all__) - {"__version__"}


def test_every_event_class_is_in_the_union_and_exported() -> None:
    members = typing.get_args(_events.Event)
    classes = {
        c
        for c in vars(_events).values()
        if isinstance(c, type) and issubclass(c, _events.EventBase) and c is not _events.EventBase
    }
    assert set(members) == classes
    tags = [c.__struct_config__.tag for c in members]
    assert len(set(tags)) == len(tags)
    for cls in members:
        assert getattr(respflow, cls.__name__) is cls

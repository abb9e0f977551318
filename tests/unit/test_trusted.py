"""schemas.trusted: models built without validating, exactly as model_construct builds them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from schemas.trusted import build, constructor


class Leading(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: int = 1
    name: str
    tags: list[str] = Field(default_factory=list)


def test_constructor_fills_the_leading_defaults_and_keeps_the_fields_set():
    make = constructor(Leading)
    fast, slow = make({"name": "a", "tags": []}), Leading.model_construct(name="a", tags=[])
    assert (
        list(fast.__dict__.items())
        == list(slow.__dict__.items())
        == [
            ("version", 1),
            ("name", "a"),
            ("tags", []),
        ]
    )
    assert fast.model_fields_set == slow.model_fields_set == {"name", "tags"}
    assert fast.model_dump(exclude_unset=True) == {"name": "a", "tags": []}
    assert fast == slow


def test_build_takes_the_values_as_they_are():
    values = {"version": 2, "name": "b", "tags": ["x"]}
    model = build(Leading, values)
    assert model == Leading(**values) and model.model_fields_set == set(values)
    assert model.__dict__ is values  # not copied: the caller hands it over


class Aliased(BaseModel):
    name: str = Field(alias="n")


class Trailing(BaseModel):
    name: str
    version: int = 1


class Private(BaseModel):
    name: str
    _seen: int = PrivateAttr(default=0)


@pytest.mark.parametrize(
    ("cls", "why"),
    [
        (Aliased, "has an alias"),
        (Trailing, "a constant default after other fields"),
        (Private, "needs model_construct"),
    ],
)
def test_constructor_refuses_what_it_cannot_build_as_model_construct(cls, why):
    with pytest.raises(TypeError, match=why):
        constructor(cls)

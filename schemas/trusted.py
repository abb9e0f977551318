"""Models built from values known to be valid, without validating them again.

pydantic's ``model_construct`` is generic (aliases, defaults, extras looked
up per call) and was a fifth of the core's time. For the frozen models built
on the hot path (the core's outputs, the edge's own packs decoded again) it
comes down to setting four slots, which is all ``build`` does. Only values
that were validated (or made from validated ones) may go in:
tests/unit/test_outputs_valid.py checks every output of a simulated feed
against the contract, tests/unit/test_packed.py the decoded packs, and
tests/unit/test_state.py compares ``constructor`` with ``model_construct``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)

_new = object.__new__
# The slots of every pydantic model, set through their descriptors (as
# ``object.__setattr__`` would, a lookup less).
_SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
_set_dict, _set_fields, _set_extra, _set_private = (
    BaseModel.__dict__[name].__set__ for name in _SLOTS
)


def build(cls: type[Model], values: dict[str, Any]) -> Model:
    """``cls.model_construct(**values)`` given every field, in field order, no aliases.

    ``values`` becomes the model's ``__dict__`` (not copied) and its keys the
    fields set.

    >>> from schemas.grant import RuleCoins
    >>> rc = build(RuleCoins, {"rule_id": "r", "coins": 3})
    >>> rc == RuleCoins(rule_id="r", coins=3), rc.model_fields_set == {"rule_id", "coins"}
    (True, True)
    """
    model = _new(cls)
    _set_dict(model, values)
    _set_fields(model, set(values))  # its own: pydantic wants a set
    _set_extra(model, None)
    _set_private(model, None)
    return model


def constructor(cls: type[Model]) -> Callable[[dict[str, Any]], Model]:
    """A ``build`` of ``cls`` that also fills the leading fields' constant defaults.

    The values are passed in field order, every field but the leading ones
    with a constant default (fields with a default factory are always
    passed), and become the fields set, exactly as ``model_construct(**values)``
    would make them. Refuses (``TypeError``) a model that needs more: an alias,
    a constant default after other fields, a post-init, a root model, private
    attributes.
    """
    defaults: dict[str, Any] = {}
    for position, (name, info) in enumerate(cls.__pydantic_fields__.items()):
        if info.alias is not None or info.validation_alias is not None:
            raise TypeError(f"{cls.__name__}.{name} has an alias")
        if not info.is_required() and info.default_factory is None:
            if position != len(defaults):  # they lead, so {**defaults, **values} is in order
                raise TypeError(f"{cls.__name__}.{name}: a constant default after other fields")
            defaults[name] = info.default
    if cls.__pydantic_post_init__ or cls.__pydantic_root_model__ or cls.__private_attributes__:
        raise TypeError(f"{cls.__name__} needs model_construct")

    def make(values: dict[str, Any]) -> Model:
        model = _new(cls)
        _set_dict(model, {**defaults, **values} if defaults else values)
        _set_fields(model, set(values))
        _set_extra(model, None)
        _set_private(model, None)
        return model

    return make

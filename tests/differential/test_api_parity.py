"""Each compiled kernel offers its twin's API: the same classes, methods and parameters."""

from __future__ import annotations

import inspect

import pytest

from broker._native import KERNELS
from tests.differential.pair import both


def _public(cls: type) -> dict[str, object]:
    """The methods a caller may use: public names and protocol methods (``__len__``, …)."""
    return {
        name: member
        for name, member in vars(cls).items()
        if callable(member)
        and (not name.startswith("_") or (name.endswith("__") and name != "__repr__"))
    }


def _parameters(function: object) -> list[tuple[str, object]]:
    params = list(inspect.signature(function).parameters.values())  # type: ignore[arg-type]
    return [(p.name, p.kind if p.kind != p.POSITIONAL_ONLY else p.POSITIONAL_OR_KEYWORD)
            for p in params if p.name != "self"]  # fmt: skip


@pytest.mark.parametrize("kernel", KERNELS)
def test_compiled_kernel_has_the_twins_api(kernel: str) -> None:
    compiled, twin = both(kernel)
    classes = [
        c for c in vars(twin).values() if inspect.isclass(c) and c.__module__ == twin.__name__
    ]
    assert classes, f"{kernel}: the twin defines no class"
    for twin_cls in classes:
        if twin_cls.__name__.startswith("_"):
            continue
        native_cls = getattr(compiled, twin_cls.__name__)
        for name, method in _public(twin_cls).items():
            native_method = getattr(native_cls, name, None)
            assert native_method is not None, f"{kernel}.{twin_cls.__name__}.{name} is missing"
            if name.startswith("__"):
                continue  # a compiled protocol slot has no parameters to read
            assert _parameters(native_method) == _parameters(method), (
                f"{kernel}.{twin_cls.__name__}.{name}"
            )

"""Assembles :mod:`ctpshim.mdapi` and :mod:`ctpshim.tdapi` from the spec.

Each module gets, as in openctp-ctp: all 502 field classes (its own copies), every
``THOST_FTDC_*`` / ``THOST_TERT_*`` constant, the Spi class with one no-op method per callback
(same names and parameters), and the API class with every method.
"""

from __future__ import annotations

from typing import Any

from ..ctp.fields import field_factory, load_spec
from .lifecycle import MdApiBase, TraderApiBase, request_method

_SPI_DOC = (
    "Callbacks of {api}. Subclass it, call the base ``__init__``, and override the callbacks you\n"
    "need by name; the others do nothing. All callbacks of one API object run on that object's\n"
    "own thread, in order. An exception raised in a callback is printed and dispatch goes on."
)


def _spi_class(module_name: str, name: str, api_name: str, methods: list[dict[str, Any]]) -> type:
    lines = []
    for method in methods:
        params = ", ".join(["self"] + [p for p, _ in method["params"]])
        lines.append(f"def {method['name']}({params}):\n    return None\n")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)  # generated from the spec: real signatures for help() and IDEs
    body: dict[str, Any] = {"__module__": module_name, "__doc__": _SPI_DOC.format(api=api_name)}
    for method in methods:
        function = namespace[method["name"]]
        function.__qualname__ = f"{name}.{method['name']}"
        function.__module__ = module_name
        body[method["name"]] = function
    body["__init__"] = lambda self: None
    return type(name, (object,), body)


def _api_class(module_name: str, base: Any, methods: list[dict[str, Any]]) -> Any:
    name = base._class_name
    body: dict[str, Any] = {"__module__": module_name, "__doc__": base.__doc__, "__qualname__": name}
    for method in methods:
        if method["name"].startswith("Req"):
            field_class = method["params"][0][1]
            params = [p for p, _ in method["params"]]
            body[method["name"]] = request_method(name, method["name"], field_class, params)
    cls = type(name, (base,), body)
    missing = [m["name"] for m in methods if not hasattr(cls, m["name"])]
    if missing:
        raise AssertionError(f"{name} lacks {missing}")
    return cls


def populate(namespace: dict[str, Any], flavour: str) -> None:
    """Fill a facade module's namespace (``flavour`` is ``"mdapi"`` or ``"tdapi"``).

    Field classes are created on first access through the module's ``__getattr__``; ``dir()``
    and ``__all__`` list them all.
    """
    spec = load_spec()["modules"][flavour]
    module_name = namespace["__name__"]
    factory = field_factory(flavour)  # the domain's classes: ctp.fields.field_class gives the same objects
    if factory.module_name != module_name:
        raise ValueError(f"{module_name} cannot hold the {flavour} classes of {factory.module_name}")
    field_names = set(factory.names())

    def __getattr__(name: str) -> Any:
        if name in field_names:
            cls = factory.get(name)
            namespace[name] = cls
            return cls
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | field_names)

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
    namespace.update(spec["constants"])
    spi_name, api_name = spec["spi"]["name"], spec["api"]["name"]
    namespace[spi_name] = _spi_class(module_name, spi_name, api_name, spec["spi"]["methods"])
    base = MdApiBase if flavour == "mdapi" else TraderApiBase
    cls = _api_class(module_name, base, spec["api"]["methods"])
    cls._module = _ModuleRef(module_name)
    namespace[api_name] = cls
    namespace["__all__"] = sorted([*field_names, *spec["constants"], spi_name, api_name])


class _ModuleRef:
    """Resolves field classes from the finished module (it is still being built when the API
    class is created)."""

    def __init__(self, module_name: str) -> None:
        self._module_name = module_name

    def __getattr__(self, name: str) -> Any:
        import sys

        return getattr(sys.modules[self._module_name], name)

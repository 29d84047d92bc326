"""Scheme -> adapter registry.

Built-in schemes map to ``"module:Class"`` strings imported on first use.  Third-party adapters
register through the ``ctpshim.adapters`` entry-point group, which is read only when a scheme is
not built in; programs can also call :func:`register_adapter`.  A built-in scheme cannot be
replaced.  Every class is held to the adapter contract when it is registered (a class) or first
loaded (a ``"module:Class"`` string, an entry point): a missing hook raises
:class:`ctpshim.errors.AdapterContractError` naming the class and the hooks.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..errors import AdapterContractError, FrontAddressError
from ..messages import os_error_words
from .url import FrontURL, parse_front_url, resolve_settings

if TYPE_CHECKING:
    from ..adapters.base import Adapter

BUILTIN: dict[str, str] = {
    "sim": "ctpshim.adapters.sim:SimAdapter",
    "replay": "ctpshim.adapters.replay:ReplayAdapter",
    "sina": "ctpshim.adapters.sina:SinaAdapter",
    "tencent": "ctpshim.adapters.tencent:TencentAdapter",
    "tcp": "ctpshim.adapters.tcp:TcpFront",
    "ssl": "ctpshim.adapters.tcp:SslFront",
    "ctpshim": "ctpshim.adapters.ctpshim:CtpshimAdapter",
    "ctpshims": "ctpshim.adapters.ctpshim:CtpshimsAdapter",
    "redis": "ctpshim.adapters.redis:RedisAdapter",
}

# Schemes that belong to ctpshim but are not in this version: named in the error so users know
# the address is right and what to do instead.
PLANNED: dict[str, str] = {}

_extra: dict[str, str | type] = {}
_loaded: dict[str, type] = {}
_lock = threading.Lock()
_ENTRY_POINT_GROUP = "ctpshim.adapters"


def register_adapter(scheme: str, target: "str | type[Adapter]") -> None:
    """Register an adapter class (or ``"module:Class"``) for ``scheme``.

    Raises ``ValueError`` for a built-in scheme: those cannot be silently replaced, and
    :class:`AdapterContractError` for a class that does not meet the adapter contract (a string
    is checked when the scheme is first used).
    """
    scheme = scheme.lower()
    if scheme in BUILTIN:
        raise ValueError(f"scheme {scheme!r} is built into ctpshim and cannot be replaced")
    if not isinstance(target, str):
        _verify(target, scheme)
    with _lock:
        _extra[scheme] = target
        _loaded.pop(scheme, None)


def unregister_adapter(scheme: str) -> None:
    """Forget a scheme registered with :func:`register_adapter` (built-ins stay)."""
    with _lock:
        _extra.pop(scheme.lower(), None)
        _loaded.pop(scheme.lower(), None)


def known_schemes() -> list[str]:
    """The built-in and registered schemes (entry points are not scanned for this)."""
    return sorted(set(BUILTIN) | set(_extra))


def _entry_point(scheme: str) -> str | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=_ENTRY_POINT_GROUP):
        if ep.name.lower() == scheme:
            return ep.value
    return None


def _import(target: str, scheme: str) -> type:
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise AdapterContractError(f"adapter {target!r} for {scheme}://: {module_name} has no {class_name!r}") from None
    _verify(cls, scheme)
    return cls


def _verify(cls: Any, scheme: str) -> None:
    from ..adapters.base import verify_adapter_class

    verify_adapter_class(cls, scheme)


def adapter_class(scheme: str, raw: str = "") -> type:
    """The adapter class for ``scheme``, imported on first use."""
    scheme = scheme.lower()
    with _lock:
        if scheme in _loaded:
            return _loaded[scheme]
        target: str | type | None = BUILTIN.get(scheme) or _extra.get(scheme)
    if target is None:
        target = _entry_point(scheme)
    if target is None:
        valid = ", ".join(f"{s}://" for s in known_schemes())
        where = f"front {raw!r}: " if raw else ""
        if scheme in PLANNED:
            raise FrontAddressError(
                f"{where}{scheme}:// ({PLANNED[scheme]}) is not available in this version of ctpshim; "
                f"available schemes: {valid}. To run a program written for a real front on another "
                f"source, set CTPSHIM_FRONT or use `ctpshim run --front URL program.py`."
            )
        raise FrontAddressError(f"{where}unknown scheme {scheme!r}; available schemes: {valid}")
    cls = _import(target, scheme) if isinstance(target, str) else target
    with _lock:
        _loaded[scheme] = cls
    return cls


def description(scheme: str) -> str:
    """One line on what ``scheme`` is: the first line of the docstring of the module it is
    registered from (``"package.module:Class"``: a package such as ``ctpshim.adapters.sim``
    describes the scheme, not the module deep inside it that defines the class), else of the
    class's own module, else of the class.  A class that sets ``summary`` itself (a second scheme
    of one module) is described by it."""
    cls = adapter_class(scheme)
    own = cls.__dict__.get("summary")
    if isinstance(own, str) and own:
        return own
    with _lock:
        target = BUILTIN.get(scheme.lower()) or _extra.get(scheme.lower())
    module_name = target.partition(":")[0] if isinstance(target, str) else cls.__module__
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    doc = (module.__doc__ or cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def resolve_front(raw: Any) -> tuple[FrontURL, type, dict[str, Any]]:
    """Parse ``raw``: its address, adapter class and settings (``FrontAddressError`` if bad);
    the ``trader.*`` keys are checked too (:mod:`ctpshim.broker.settings`), and are not in the
    settings returned.

    The adapter's own ``check`` (does the recording exist ...) is not run; see :func:`validate_front`.
    """
    url = parse_front_url(raw)
    cls = adapter_class(url.scheme, url.raw)
    settings = resolve_settings(url, cls.settings)
    from ..broker import settings as trader  # the simulated counter's trader.* keys

    trader.check_front(url, bool(cls.capabilities.pass_through))
    return url, cls, settings


def check_front(url: FrontURL, cls: type, settings: dict[str, Any]) -> None:
    """Run the adapter's own ``check`` (does the recording exist ...): the one place where what
    it raises, a ``ValueError`` or an ``OSError`` (permission denied ...), becomes a
    ``FrontAddressError`` naming the front and the reason."""
    try:
        cls.check(url, settings)
    except FrontAddressError:
        raise
    except ValueError as exc:
        raise FrontAddressError(f"front {url.raw!r}: {exc}") from None
    except OSError as exc:
        raise FrontAddressError(f"front {url.raw!r}: {os_error_words(exc)}") from None


describe_os_error = os_error_words


def validate_front(raw: Any) -> tuple[FrontURL, dict[str, Any]]:
    """Parse ``raw`` and check its scheme, its settings and (the adapter's ``check``) what it
    points at; raise ``FrontAddressError`` if bad."""
    url, cls, settings = resolve_front(raw)
    check_front(url, cls, settings)
    return url, settings


def is_pass_through(raw: str) -> bool:
    """Whether the front ``raw`` is a real CTP front driven through openctp-ctp (``tcp://``)."""
    url = parse_front_url(raw)
    return bool(adapter_class(url.scheme, url.raw).capabilities.pass_through)


def create_adapter(raw: "str | FrontURL") -> "Adapter":
    """A new adapter instance for the front address ``raw`` (no I/O happens here)."""
    url = parse_front_url(raw.raw if isinstance(raw, FrontURL) else raw)
    return adapter_class(url.scheme, url.raw).from_url(url)

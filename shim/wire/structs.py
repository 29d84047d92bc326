"""CTP 6.7.11's C struct layouts, computed from the committed spec, and the codec of field objects.

Every ``CThostFtdc*Field`` of ``shim/ctp/spec/openctp_ctp.json`` is laid out as a C compiler lays
out the struct on x86-64 (System V, natural alignment):

* ``char[N]``: N bytes, alignment 1; the text in GB18030, ended by a NUL and padded with NULs
  (at most N - 1 bytes of text: the last byte is always NUL);
* ``char``: 1 byte, alignment 1; the character's code, 0 for the empty char;
* ``short``: 2 bytes little-endian, alignment 2; ``int``: 4 bytes, alignment 4;
* ``double``: 8 bytes IEEE 754 little-endian, alignment 8;
* each member starts at the next multiple of its alignment (padding bytes are 0 when packed,
  ignored when unpacked); the struct's size is rounded up to a multiple of its largest alignment.

``CThostFtdcDepthMarketDataField`` is 584 bytes (:data:`TICK_SIZE`); the test suite checks the
sizes and offsets against openctp-ctp's C structs when that package is installed.

:data:`LAYOUT_ID` names this set of layouts (see :func:`layout_id_text`): a client states in its
HELLO the id of the headers it was compiled against, and the server refuses another one.

Packing and unpacking are compiled per class (one :class:`struct.Struct` and one generated
function each way), since the tick path packs every tick once on the server and unpacks it on
every Python client.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from typing import Any, Callable

from ..ctp.fields import field_class, load_spec, maker
from .frames import WireError

# kind -> (struct format of one member, size, alignment)
_SCALARS = {"char": ("c", 1, 1), "short": ("h", 2, 2), "int": ("i", 4, 4), "double": ("d", 8, 8)}
FLAVOURS = ("mdapi", "tdapi")
TICK_CLASS = "CThostFtdcDepthMarketDataField"

# A single char's byte <-> the str a field holds; the empty char is "\x00" in mdapi and "" in tdapi.
_CHAR_TO_BYTE: dict[Any, bytes] = {chr(code): bytes((code,)) for code in range(256)}
_CHAR_TO_BYTE[""] = b"\x00"
_BYTE_TO_CHAR = {flavour: {bytes((code,)): chr(code) for code in range(256)} for flavour in FLAVOURS}
_BYTE_TO_CHAR["tdapi"][b"\x00"] = ""


def _text(raw: bytes) -> str:
    """A ``char[N]``'s bytes as the str a field holds: up to the first NUL, GB18030."""
    end = raw.find(b"\x00")
    if end >= 0:
        raw = raw[:end]
    if raw.isascii():
        return raw.decode("ascii")
    return raw.decode("gb18030", "replace")


def _raw_members() -> frozenset[str]:
    """``Class.member`` of every member a flavour keeps as raw bytes (tdapi's ``SettlementInfo.Content``)."""
    modules = load_spec()["modules"]
    return frozenset(name for flavour in FLAVOURS for name in modules[flavour]["bytes_members"])


def _raw(raw: bytes) -> bytes:
    """A raw-bytes member (tdapi's ``SettlementInfo.Content``): up to the first NUL."""
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end]


def _encode(value: Any) -> bytes:
    """A ``char[N]`` member's value (str, or bytes for raw members) as bytes."""
    if type(value) is bytes:
        return value
    if value.isascii():
        return value.encode("ascii")
    return value.encode("gb18030")


def ctype_of(kind: str, size: int) -> str:
    """The C type of a spec member: ``char[N]``, ``char``, ``short``, ``int`` or ``double``."""
    return f"char[{size}]" if kind == "str" else kind


class Layout:
    """The C layout of one field class, and its packer and unpacker.

    ``size`` is ``sizeof`` the struct, ``align`` its alignment, ``offsets`` each member's offset
    (in header order, as ``members``), ``ctypes`` each member's C type, ``struct`` the
    :class:`struct.Struct` of the whole struct (little-endian, padding as ``x``).
    """

    def __init__(self, name: str, members: list[list[Any]]) -> None:
        self.name = name
        self.members: tuple[str, ...] = tuple(entry[0] for entry in members)
        self.ctypes: tuple[str, ...] = tuple(ctype_of(entry[2], entry[3]) for entry in members)
        offsets: list[int] = []
        formats: list[str] = ["<"]
        offset = 0
        align = 1
        for _member, _typedef, kind, size in members:
            if kind == "str":
                fmt, width, alignment = f"{size - 1}sx", size, 1
            else:
                fmt, width, alignment = _SCALARS[kind]
            pad = -offset % alignment
            if pad:
                formats.append(f"{pad}x")
            offset += pad
            offsets.append(offset)
            formats.append(fmt)
            offset += width
            align = max(align, alignment)
        tail = -offset % align
        if tail:
            formats.append(f"{tail}x")
        self.size = offset + tail
        self.align = align
        self.offsets: tuple[int, ...] = tuple(offsets)
        self.struct = struct.Struct("".join(formats))
        assert self.struct.size == self.size
        self._kinds = tuple(entry[2] for entry in members)
        self._pack = self._compile_pack()
        self._unpackers: dict[str, Callable[[Any, int], Any]] = {}
        self._lock = threading.Lock()

    def _compile_pack(self) -> Callable[[Any], bytes]:
        raw_members = _raw_members()
        parts = []
        for index, (member, kind) in enumerate(zip(self.members, self._kinds)):
            if kind == "str" and f"{self.name}.{member}" in raw_members:
                parts.append(f"e(v[{index}])")
            elif kind == "str":  # inline: the tick path packs 7 of them per tick
                parts.append(f"(a.encode() if (a := v[{index}]).isascii() else e(a))")
            elif kind == "char":
                parts.append(f"c[v[{index}]]")
            else:
                parts.append(f"v[{index}]")
        source = f"def pack(obj, p=p, e=e, c=c):\n    v = obj._v\n    return p({', '.join(parts)})\n"
        namespace: dict[str, Any] = {"p": self.struct.pack, "e": _encode, "c": _CHAR_TO_BYTE}
        exec(compile(source, f"<ctpshim pack {self.name}>", "exec"), namespace)
        pack: Callable[[Any], bytes] = namespace["pack"]
        return pack

    def _compile_unpack(self, flavour: str) -> Callable[[Any, int], Any]:
        cls = field_class(flavour, self.name)
        raw_members = set(load_spec()["modules"][flavour]["bytes_members"])
        parts = []
        for index, (member, kind) in enumerate(zip(self.members, self._kinds)):
            if kind == "str" and f"{self.name}.{member}" in raw_members:
                parts.append(f"r(u[{index}])")
            elif kind == "str":
                parts.append(f"(b.decode() if (b := u[{index}].partition(z)[0]).isascii() else t(b))")
            elif kind == "char":
                parts.append(f"c[u[{index}]]")
            else:
                parts.append(f"u[{index}]")
        source = (
            "def unpack(data, offset, f=f, m=m, t=t, r=r, c=c, z=z):\n"
            "    u = f(data, offset)\n"
            f"    return m(({', '.join(parts)},))\n"
        )
        namespace: dict[str, Any] = {
            "f": self.struct.unpack_from, "m": maker(cls), "t": _text, "r": _raw, "c": _BYTE_TO_CHAR[flavour],
            "z": b"\x00",
        }
        exec(compile(source, f"<ctpshim unpack {self.name} {flavour}>", "exec"), namespace)
        unpack: Callable[[Any, int], Any] = namespace["unpack"]
        return unpack

    def unpacker(self, flavour: str) -> Callable[[Any, int], Any]:
        """``unpack_from(data, offset) -> field object`` of ``flavour`` (no length check)."""
        unpack = self._unpackers.get(flavour)
        if unpack is None:
            if flavour not in FLAVOURS:
                raise ValueError(f"flavour {flavour!r}: expected 'mdapi' or 'tdapi'")
            with self._lock:
                unpack = self._unpackers.get(flavour)
                if unpack is None:
                    unpack = self._unpackers[flavour] = self._compile_unpack(flavour)
        return unpack

    def pack(self, obj: Any) -> bytes:
        """``obj`` (a field object of this class, of either flavour) as the C struct's bytes."""
        try:
            return self._pack(obj)
        except Exception as exc:
            raise self._pack_error(obj, exc) from None

    def _pack_error(self, obj: Any, exc: Exception) -> WireError:
        cls = type(obj)
        if cls.__name__ != self.name or not hasattr(obj, "_v"):
            return WireError(f"cannot pack a {cls.__name__} as {self.name}: expected a {self.name} field object")
        for member, ctype, value in zip(self.members, self.ctypes, obj._v):
            try:
                if ctype.startswith("char["):
                    _encode(value)
                elif ctype == "char":
                    _CHAR_TO_BYTE[value]
                else:
                    struct.pack("<" + _SCALARS[ctype][0], value)
            except Exception as member_exc:
                return WireError(f"cannot pack {self.name}.{member} = {value!r} as {ctype}: {member_exc}")
        return WireError(f"cannot pack {self.name}: {exc}")

    def unpack(self, data: bytes | bytearray | memoryview, flavour_or_class: str | type = "mdapi") -> Any:
        """A field object from exactly ``size`` bytes; ``flavour_or_class`` is ``"mdapi"``,
        ``"tdapi"`` or a field class (its module decides the flavour)."""
        if len(data) != self.size:
            raise WireError(f"{self.name} needs {self.size} bytes, got {len(data)}")
        return self.unpacker(_flavour(flavour_or_class))(data, 0)


def _flavour(flavour_or_class: str | type) -> str:
    if isinstance(flavour_or_class, str):
        return flavour_or_class
    module = flavour_or_class.__module__.rsplit(".", 1)[-1]
    if module not in FLAVOURS:
        raise ValueError(f"{flavour_or_class!r} is not a field class of ctpshim.mdapi or ctpshim.tdapi")
    return module


_layouts: dict[str, Layout] = {}
_layouts_lock = threading.Lock()


def layout(class_name: str) -> Layout:
    """The :class:`Layout` of ``CThostFtdc*Field`` class ``class_name`` (``KeyError`` naming it)."""
    found = _layouts.get(class_name)
    if found is not None:
        return found
    fields = load_spec()["fields"]
    if class_name not in fields:
        raise KeyError(f"no CTP field class {class_name!r} in the 6.7.11 spec")
    with _layouts_lock:
        found = _layouts.get(class_name)
        if found is None:
            found = _layouts[class_name] = Layout(class_name, fields[class_name])
    return found


def class_names() -> list[str]:
    """Every field class of the spec, in the spec's (alphabetical) order."""
    return list(load_spec()["fields"])


def layout_id_text() -> str:
    """The text whose SHA-256 gives :data:`LAYOUT_ID` (``docs/PROTOCOL.md`` section "Layout id").

    One line per field class, in byte order of the class names: the class name, a space, then
    its members in header order as ``name:ctype`` joined by ``,`` (ctype ``char[N]``, ``char``,
    ``short``, ``int`` or ``double``); lines end with ``\\n``.
    """
    fields = load_spec()["fields"]
    lines = []
    for name in sorted(fields):
        members = ",".join(f"{member}:{ctype_of(kind, size)}" for member, _typedef, kind, size in fields[name])
        lines.append(f"{name} {members}\n")
    return "".join(lines)


def _layout_id() -> str:
    version = ".".join(load_spec()["package_version"].split(".")[:3])
    digest = hashlib.sha256(layout_id_text().encode("ascii")).hexdigest()
    return f"ctp{version}-{digest[:16]}"


LAYOUT_ID: str = _layout_id()

_tick_layout = layout(TICK_CLASS)
TICK_SIZE: int = _tick_layout.size
_tick_pack = _tick_layout._pack
_tick_unpack = _tick_layout.unpacker("mdapi")


def pack_tick(tick: Any) -> bytes:
    """A ``CThostFtdcDepthMarketDataField`` (either flavour) as its :data:`TICK_SIZE` bytes."""
    try:
        return _tick_pack(tick)
    except Exception as exc:
        raise _tick_layout._pack_error(tick, exc) from None


def unpack_tick(data: bytes | bytearray | memoryview) -> Any:
    """An mdapi ``CThostFtdcDepthMarketDataField`` from exactly :data:`TICK_SIZE` bytes."""
    if len(data) != TICK_SIZE:
        raise WireError(f"{TICK_CLASS} needs {TICK_SIZE} bytes, got {len(data)}")
    return _tick_unpack(data, 0)


def unpack_ticks(data: bytes | bytearray | memoryview, count: int, offset: int = 0) -> list[Any]:
    """``count`` consecutive ticks from ``data`` at ``offset`` (mdapi objects); the caller has
    checked that ``data`` holds them."""
    unpack = _tick_unpack
    return [unpack(data, offset + index * TICK_SIZE) for index in range(count)]

"""Distinct member values for any CTP struct, and the C memory of openctp-ctp's SWIG struct filled with
them: the probe that checks ctpshim's layouts (tests/wire) and the native libraries' (tests/native)."""

from __future__ import annotations

import ctypes
from typing import Any

from ctpshim.ctp.fields import load_spec


def sample_values(class_name: str, flavour: str, salt: int = 0) -> tuple[Any, ...]:
    """A distinct valid value for every member of ``class_name`` (``flavour`` is mdapi or tdapi)."""
    spec = load_spec()
    raw = set(spec["modules"][flavour]["bytes_members"])
    values: list[Any] = []
    for index, (member, _typedef, kind, size) in enumerate(spec["fields"][class_name]):
        n = index + salt
        if kind == "str":
            text = f"{member[:3]}{n}"[: size - 1]
            values.append(text.encode() if f"{class_name}.{member}" in raw else text)
        elif kind == "char":
            values.append(chr(ord("A") + n % 26))
        elif kind == "short":
            values.append(n + 1)
        elif kind == "int":
            values.append(-1000 - n)
        else:
            values.append(n + 0.25)
    return tuple(values)


def openctp_memory(real_module: Any, class_name: str, values: tuple[Any, ...], size: int) -> bytes:
    """The first ``size`` bytes of openctp's C struct ``class_name`` after setting its members, in
    declaration order, to ``values`` through the SWIG object of ``real_module``."""
    swig = getattr(real_module, class_name)()
    for (member, *_rest), value in zip(load_spec()["fields"][class_name], values):
        setattr(swig, member, value)
    return ctypes.string_at(int(swig.this), size)

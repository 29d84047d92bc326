"""Moved: ``ctpshim convert`` is :mod:`ctpshim.tools.commands.convert`.  Kept until the importers
have switched."""

from .commands.convert import convert

__all__ = ["convert"]

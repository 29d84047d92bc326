"""Moved: ``ctpshim record`` is :mod:`ctpshim.tools.commands.record`.  Kept until the importers
have switched."""

from .commands.record import fewer_young_collections, record

__all__ = ["fewer_young_collections", "record"]

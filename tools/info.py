"""Moved: ``ctpshim info`` is :mod:`ctpshim.tools.commands.info`; ``describe`` is
:func:`ctpshim.recording.describe`.  Kept until the importers have switched."""

from ctpshim.recording import describe
from .commands.info import info, print_reports

__all__ = ["describe", "info", "print_reports"]

"""Error types shared by the facade, the sessions and the adapters.

Adapters raise only :class:`UpstreamError` subclasses; the session turns them into
``OnFrontDisconnected(nReason)`` with the CTP reason code each one carries.
"""

from __future__ import annotations

# CTP's nReason codes for OnFrontDisconnected (see the MdSpi docstring in the CTP headers).
REASON_READ_FAILED = 0x1001  # 4097: network read failure (the front closed or reset the link)
REASON_WRITE_FAILED = 0x1002  # 4098: network write failure
REASON_HEARTBEAT_TIMEOUT = 0x2001  # 8193: no message received within the heartbeat timeout
REASON_HEARTBEAT_SEND_FAILED = 0x2002  # 8194: heartbeat could not be sent
REASON_BAD_MESSAGE = 0x2003  # 8195: an unrecognised message arrived

# What each code usually means in practice, for people reading logs and `ctpshim ping`.
_REASON_WORDS = {
    REASON_READ_FAILED: (
        "reset by the front (4097, network read failure): it closed the connection; usual causes: the front "
        "does not accept this API version (a 6.7.x API on a 6.3.x front or the reverse), a trading address "
        "given to a market-data API or the reverse, too many connections or logins from this address, or the "
        "front is closing for the day"
    ),
    REASON_WRITE_FAILED: "network write failure (4098): the connection broke while sending",
    REASON_HEARTBEAT_TIMEOUT: (
        "heartbeat timeout (8193): nothing came from the front for too long (a stalled front, or a network "
        "that drops idle connections)"
    ),
    REASON_HEARTBEAT_SEND_FAILED: "heartbeat send failure (8194): the connection broke",
    REASON_BAD_MESSAGE: "unrecognised message (8195): whatever answers at that address does not speak CTP",
}


def describe_reason(reason: int) -> str:
    """An ``OnFrontDisconnected`` reason code in words, with its usual causes."""
    return _REASON_WORDS.get(reason, f"disconnected with reason {reason} (0x{reason:04x})")


class CtpShimError(Exception):
    """Base class of every error ctpshim raises on purpose."""


class FrontAddressError(CtpShimError, ValueError):
    """A front address (URL) or one of its settings is malformed or unknown."""


class AdapterContractError(CtpShimError, TypeError):
    """An adapter class does not meet the adapter contract (a hook is missing, it is not an
    :class:`ctpshim.adapters.base.Adapter`); raised when it is defined or registered."""


class UpstreamError(CtpShimError):
    """The source behind a front failed; ``reason`` is the CTP disconnect code to report."""

    reason: int = REASON_READ_FAILED

    def __init__(self, message: str, reason: int | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class UpstreamUnavailable(UpstreamError):
    """The source cannot be reached at all (refused, DNS, timed out on connect).

    CTP reports nothing for a front it cannot reach and retries silently, so the session
    logs this and tries again (or the next front) without an ``OnFrontDisconnected``.
    """


class UpstreamDisconnected(UpstreamError):
    """An established link to the source broke (read failure, reset, heartbeat timeout)."""


class UpstreamProtocolError(UpstreamError):
    """The source answered with something that cannot be understood."""

    reason = REASON_BAD_MESSAGE

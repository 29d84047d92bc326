"""A blocking test client of the ``ctpshim://`` protocol, frame by frame (every wait bounded)."""

from __future__ import annotations

import socket
import time
from typing import Any

from ctpshim.wire import calls
from ctpshim.wire.frames import Frame, FrameReader, FrameType, encode_frame, encode_json
from ctpshim.wire.structs import LAYOUT_ID

TIMEOUT = 10.0


class WireClient:
    """A blocking test client speaking the protocol frame by frame (every wait bounded)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.reader = FrameReader()
        self.inbox: list[Frame] = []
        self.seq = 0
        self.closed = False

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, frame_type: int, payload: bytes = b"", **header: Any) -> int:
        self.seq += 1
        self.sock.sendall(encode_frame(frame_type, payload, seq=self.seq, **header))
        return self.seq

    def hello(self, api: str = "md", **keys: Any) -> Frame:
        values = {"magic": "CTPS", "version": 1, "api": api, "source": "", "token": "", "layout": LAYOUT_ID,
                  "client": "test"}
        values.update(keys)
        self.send(FrameType.HELLO, encode_json(values))
        return self.next()

    def call(self, method: str, args: tuple[Any, ...]) -> int:
        self.seq += 1
        self.sock.sendall(calls.call_frame(method, args, self.seq))
        return self.seq

    def _fill(self, deadline: float) -> bool:
        if self.closed:
            return False
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return True
        except ConnectionError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.inbox.extend(self.reader.feed(data))
        return True

    def next(self, timeout: float = TIMEOUT, skip_heartbeats: bool = True) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            while self.inbox:
                frame = self.inbox.pop(0)
                if skip_heartbeats and frame.type == FrameType.HEARTBEAT:
                    continue
                return frame
            if time.monotonic() > deadline:
                raise AssertionError(f"no frame within {timeout} s")
            if not self._fill(deadline):
                raise AssertionError("the connection closed")

    def until(self, predicate: Any, timeout: float = TIMEOUT) -> list[Frame]:
        """Frames up to and including the first that ``predicate`` accepts."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self.next(max(0.01, deadline - time.monotonic()))
            seen.append(frame)
            if predicate(frame):
                return seen

    def wait_closed(self, timeout: float = TIMEOUT) -> list[Frame]:
        """Every frame until the server closes the connection."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not close within {timeout} s")
            self._fill(deadline)
        frames, self.inbox = self.inbox, []
        return frames

    def close(self) -> None:
        self.sock.close()

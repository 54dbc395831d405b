"""A minimal RFC 6455 websocket client over `socket` (Blender's Python ships none).

Enough for ComfyUI's /ws: the opening handshake, masked client frames, text and binary messages
(fragmented or not), ping answered with pong, close. `recv(timeout)` returns None when nothing
whole arrived in time; a frame cut by the timeout stays buffered for the next call.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import time
from urllib.parse import urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024 * 1024  # a preview image is large; anything past this is not ComfyUI talking


class WebSocketError(Exception):
    """The handshake was refused, the peer broke the protocol, or the connection is gone."""


class Closed(WebSocketError):
    """The peer closed the connection (cleanly or not)."""


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _unmask(payload, key)


def _unmask(data: bytes, key: bytes) -> bytes:
    # XOR through one big integer: fast enough in pure Python for megabyte previews.
    if not data:
        return b""
    pad = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(data), "big")


class WebSocket:
    """One client connection. Not thread-safe: one job's worker owns it."""

    def __init__(self, sock: socket.socket, leftover: bytes = b""):
        self._sock = sock
        self._buf = bytearray(leftover)
        self._parts: list[bytes] = []  # a fragmented message so far
        self._opcode = 0  # the fragmented message's type
        self.closed = False

    @classmethod
    def connect(cls, url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> WebSocket:
        """Open `url` (ws:// or wss://, http(s):// accepted too) and do the opening handshake."""
        parts = urlsplit(url)
        secure = parts.scheme in ("wss", "https")
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            if secure:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        except OSError as e:
            raise WebSocketError(f"cannot connect to {host}:{port} ({e})") from None
        key = base64.b64encode(os.urandom(16)).decode()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            reply = bytearray()
            deadline = time.monotonic() + timeout
            while b"\r\n\r\n" not in reply:
                if len(reply) > 16384 or time.monotonic() > deadline:
                    raise WebSocketError("no websocket handshake answer")
                chunk = sock.recv(4096)
                if not chunk:
                    raise WebSocketError("the server closed the connection during the handshake")
                reply += chunk
        except OSError as e:
            sock.close()
            raise WebSocketError(f"handshake failed ({e})") from None
        except WebSocketError:
            sock.close()
            raise
        head, _, rest = bytes(reply).partition(b"\r\n\r\n")
        status, *header_lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        if status.split(" ")[1:2] != ["101"]:
            sock.close()
            raise WebSocketError(f"the server refused the websocket ({status.strip()})")
        if fields.get("sec-websocket-accept") != accept_key(key):
            sock.close()
            raise WebSocketError("the server answered the handshake with a wrong key")
        return cls(sock, rest)

    # -- sending ------------------------------------------------------------------------------------------------

    def send(self, opcode: int, payload: bytes) -> None:
        if self.closed:
            raise Closed("the websocket is closed")
        try:
            self._sock.settimeout(10.0)
            self._sock.sendall(encode_frame(opcode, payload))
        except OSError as e:
            self._drop()
            raise Closed(f"send failed ({e})") from None

    def send_text(self, text: str) -> None:
        self.send(TEXT, text.encode("utf-8"))

    def ping(self, payload: bytes = b"") -> None:
        self.send(PING, payload)

    def close(self, code: int = 1000) -> None:
        """Say goodbye (best effort) and drop the connection."""
        if not self.closed:
            try:
                self._sock.settimeout(1.0)
                self._sock.sendall(encode_frame(CLOSE, struct.pack(">H", code)))
            except OSError:
                pass
        self._drop()

    def _drop(self) -> None:
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass

    # -- receiving ----------------------------------------------------------------------------------------------

    def recv(self, timeout: float) -> str | bytes | None:
        """The next whole message (str for text, bytes for binary), or None after `timeout` seconds.
        Pings are answered on the way; raises Closed when the peer closes or the connection breaks."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frame()
            if frame is None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._read(left):
                    return None
                continue
            fin, opcode, payload = frame
            if opcode == PING:
                self.send(PONG, payload)
            elif opcode == PONG:
                pass
            elif opcode == CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close(code if code not in (1005, 1006) else 1000)
                raise Closed(f"the server closed the websocket ({code})")
            elif opcode in (TEXT, BINARY, CONTINUATION):
                message = self._assemble(fin, opcode, payload)
                if message is not None:
                    return message
            else:
                self._fail(f"unknown opcode {opcode:#x}")

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> str | bytes | None:
        if opcode == CONTINUATION:
            if not self._parts:
                self._fail("a continuation frame with no message to continue")
        elif self._parts:
            self._fail("a new message began inside a fragmented one")
        else:
            self._opcode = opcode
        self._parts.append(payload)
        if sum(len(p) for p in self._parts) > MAX_MESSAGE:
            self._fail("a message larger than 64 MB")
        if not fin:
            return None
        data, self._parts = b"".join(self._parts), []
        if self._opcode == BINARY:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self._fail("a text message that is not UTF-8")

    def _frame(self) -> tuple[bool, int, bytes] | None:
        """Take one whole frame off the buffer, or None when it is not all here yet."""
        buf = self._buf
        if len(buf) < 2:
            return None
        fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
        masked, n, at = bool(buf[1] & 0x80), buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, at = struct.unpack(">H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, at = struct.unpack(">Q", buf[2:10])[0], 10
        if n > MAX_MESSAGE:
            self._fail("a frame larger than 64 MB")
        if opcode >= CLOSE and (n > 125 or not fin):
            self._fail("a control frame that is fragmented or too long")
        key = bytes(buf[at:at + 4]) if masked else b""
        start = at + len(key)
        if len(buf) < start + n:
            return None
        payload = bytes(buf[start:start + n])
        del buf[:start + n]
        return fin, opcode, _unmask(payload, key) if masked else payload

    def _read(self, timeout: float) -> bool:
        """Read what is there into the buffer; False when nothing came in `timeout`."""
        if self.closed:
            raise Closed("the websocket is closed")
        try:
            self._sock.settimeout(max(timeout, 0.001))
            chunk = self._sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except OSError as e:
            self._drop()
            raise Closed(f"the connection broke ({e})") from None
        if not chunk:
            self._drop()
            raise Closed("the server dropped the connection")
        self._buf += chunk
        return True

    def _fail(self, why: str):
        self.close(1002)
        raise WebSocketError(f"protocol error: {why}")

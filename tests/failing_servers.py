"""Receivers on 127.0.0.1 that fail in one precise way each, to test what the outbox concludes from every failure.

Each HTTP mode reads the whole request first (so the request provably arrived) and then misbehaves; ``arrived``
counts the requests that did. The SMTP server takes a whole message and hangs up instead of answering it.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

HTTP_MODES = ("hang", "close", "reset", "truncate")
TRUNCATED = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 90\r\n\r\n{"e'  # 3 of 90


@dataclass
class FailingServer:
    mode: str  # hang, close, reset, truncate, or smtp-hangup
    arrived: int = 0
    _listener: socket.socket = field(default_factory=socket.socket)
    _open: list[socket.socket] = field(default_factory=list)

    def start(self) -> FailingServer:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def stop(self) -> None:
        for connection in [self._listener, *self._open]:
            with contextlib.suppress(OSError):
                connection.close()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(connection)
            handler = self._smtp if self.mode == "smtp-hangup" else self._http
            threading.Thread(target=handler, args=(connection,), daemon=True).start()

    def _http(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            _read_http_request(connection)
            self.arrived += 1
            if self.mode == "hang":
                return  # keep the connection open and never answer
            if self.mode == "reset":  # an RST instead of a FIN
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if self.mode == "truncate":
                connection.sendall(
                    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 90\r\n\r\n{"e'
                )
            connection.close()

    def _smtp(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            reader = connection.makefile("rb")
            connection.sendall(b"220 failing.local ESMTP\r\n")
            for line in iter(reader.readline, b""):
                command = line.strip().upper()
                if command.startswith((b"EHLO", b"HELO")):
                    connection.sendall(b"250 failing.local\r\n")
                elif command == b"DATA":
                    connection.sendall(b"354 go ahead\r\n")
                    for body_line in iter(reader.readline, b""):
                        if body_line == b".\r\n":
                            break
                    self.arrived += 1
                    connection.close()  # the whole message arrived; the answer never comes
                    return
                else:
                    connection.sendall(b"250 OK\r\n")


def _read_http_request(connection: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise OSError("closed before the request ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        body += connection.recv(65536)


@contextlib.contextmanager
def failing_server(mode: str) -> Iterator[FailingServer]:
    server = FailingServer(mode).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: a new connection's SYN is dropped, so connecting times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    select.select([], fillers, [], 0.5)  # the queue is full once the fillers' handshakes have completed
    try:
        yield port
    finally:
        for sock in [listener, *fillers]:
            sock.close()

"""A TCP proxy that injects network faults in front of sshd or Azurite."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Self

from rtcdp_dev.services.base import LOOPBACK
from rtcdp_dev.services.sshd import SshdServer


class FaultyTcpProxy:
    """Forwards 127.0.0.1:`port` to a service and breaks connections on request.

    - `fail_next(count, after_bytes=0)`: the next `count` connections are cut once `after_bytes`
      bytes went from the service to the client (0: right after accepting, before any byte).
    - `cut_upload(marker, after_bytes, action)`: the first connection whose client → service
      stream contains `marker` (e.g. a blob name in an HTTP request line) runs `action` once
      `after_bytes` more bytes went up, then is cut without forwarding another byte.
    - `cut_download(after_bytes)`: the first connection, open or new, that has sent `after_bytes`
      bytes from the service to the client is cut there, whichever connection carries the
      download (an SFTP zone reads files over a connection of its transfer process, not over
      the one it lists with).

    Counting is exact to the byte, so a fault lands in the middle of a transfer every time.
    """

    host: str = LOOPBACK

    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((self.host, 0))
        self.port: int = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._pending: list[int] = []  # down-byte budgets of the next connections to cut
        self._upload: tuple[bytes, int, Callable[[], None]] | None = None
        self._download_cut: int | None = None
        self._sockets: list[socket.socket] = []
        self.accepted = 0
        self.cuts = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail_next(self, count: int = 1, after_bytes: int = 0) -> None:
        with self._lock:
            self._pending.extend([after_bytes] * count)

    def cut_download(self, after_bytes: int) -> None:
        with self._lock:
            self._download_cut = after_bytes

    def drop_connections(self) -> None:
        """Cut every open connection now (new ones are forwarded as usual)."""
        with self._lock:
            sockets, self._sockets = list(self._sockets), []
        for sock in sockets:
            self._kill(sock)

    def heal(self) -> None:
        """Forward everything again (faults already armed are dropped)."""
        with self._lock:
            self._pending.clear()
            self._upload = None
            self._download_cut = None

    def cut_upload(self, marker: bytes, after_bytes: int, action: Callable[[], None]) -> None:
        with self._lock:
            self._upload = (marker, after_bytes, action)

    def known_hosts_line(self, sshd: SshdServer) -> str:
        """sshd's host key under this proxy's address, as a client connecting here looks it up."""
        key_type, key_b64 = sshd.host_public_key.split()[1:3]
        return f"[{self.host}]:{self.port} {key_type} {key_b64}"

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._kill(sock)

    @staticmethod
    def _kill(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                budget = self._pending.pop(0) if self._pending else None
            if budget == 0:
                self.cuts += 1
                self._kill(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._kill(client)  # the service is down: the client sees a closed connection
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            pair = (client, upstream)
            threading.Thread(target=self._pump_down, args=(pair, budget), daemon=True).start()
            threading.Thread(target=self._pump_up, args=(pair,), daemon=True).start()

    def _cut(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self.cuts += 1
        for sock in pair:
            self._kill(sock)

    def _pump_down(self, pair: tuple[socket.socket, socket.socket], budget: int | None) -> None:
        client, upstream = pair
        sent = 0
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._kill(client)
                return
            with self._lock:
                at = self._download_cut
                if at is not None and sent + len(data) >= at:
                    self._download_cut = None  # this connection takes the armed cut
                else:
                    at = None
            if at is not None:
                with contextlib.suppress(OSError):
                    client.sendall(data[: at - sent])
                self._cut(pair)
                return
            sent += len(data)
            if budget is not None and len(data) >= budget:
                with contextlib.suppress(OSError):
                    client.sendall(data[:budget])
                self._cut(pair)
                return
            if budget is not None:
                budget -= len(data)
            try:
                client.sendall(data)
            except OSError:
                self._kill(upstream)
                return

    def _pump_up(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        seen = b""
        left: int | None = None  # bytes still to forward once the upload marker was seen
        action: Callable[[], None] | None = None
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._kill(upstream)
                return
            send = data
            if left is None:
                with self._lock:
                    armed = self._upload
                if armed is not None:
                    marker, after_bytes, armed_action = armed
                    seen = (seen + data)[-(len(marker) + len(data)) :]
                    at = seen.find(marker)
                    if at >= 0:
                        with self._lock:
                            mine = self._upload is armed
                            if mine:
                                self._upload = None
                        if mine:
                            # the bytes of this chunk after the marker count already
                            left = after_bytes - (len(seen) - at - len(marker)) + len(data)
                            action = armed_action
            if left is not None:
                if len(data) >= left:
                    send = data[:left]
                    with contextlib.suppress(OSError):
                        upstream.sendall(send)
                    if action is not None:
                        action()
                    self._cut(pair)
                    return
                left -= len(data)
            try:
                upstream.sendall(send)
            except OSError:
                self._kill(client)
                return

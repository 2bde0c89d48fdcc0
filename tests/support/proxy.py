"""A TCP relay to a real server that can be frozen: while frozen it forwards nothing and
answers nothing, but the kernel still accepts connections and acknowledges every packet,
which is what a client sees of a server stopped with SIGSTOP or a frozen VM."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType


class FreezableProxy:
    """Relays 127.0.0.1:`port` to `target`; `freeze()` stops relaying (and reading)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def freeze(self) -> None:
        self._running.clear()

    def thaw(self) -> None:
        self._running.set()

    def close(self) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join(timeout=10)
        self._listener.close()
        for a, b in self._pairs:
            a.close()
            b.close()

    def __enter__(self) -> FreezableProxy:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        self._listener.setblocking(False)
        selector.register(self._listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            if not self._running.is_set():  # frozen: the backlog and buffers fill, unread
                self._running.wait(timeout=0.1)
                continue
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    client, _addr = self._listener.accept()
                    server = socket.create_connection(self.target)
                    self._pairs.append((client, server))
                    selector.register(client, selectors.EVENT_READ, server)
                    selector.register(server, selectors.EVENT_READ, client)
                    continue
                other: socket.socket = key.data
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    other.sendall(data)
                else:
                    for s in (sock, other):
                        with contextlib.suppress(KeyError, ValueError):
                            selector.unregister(s)
                        s.close()
        selector.close()

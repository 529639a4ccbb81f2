"""A UDP relay the chaos tests put in front of each node's RPC port, so
they can cut a node off (both directions) and heal it, on loopback only."""

from __future__ import annotations

import selectors
import socket
import threading

UPSTREAMS_MAX = 64


class UdpProxy:
    """Relays datagrams arriving at `port` to 127.0.0.1:`target_port`, with
    one upstream socket per source, and the answers back. While `isolated`,
    everything is dropped; datagrams from or to a source port in
    `blocked_sources` are dropped too."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.isolated = False
        self.blocked_sources: set = set()
        self.dropped = 0
        self._upstreams: dict = {}
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _drop(self, src) -> bool:
        if self.isolated or src[1] in self.blocked_sources:
            self.dropped += 1
            return True
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.1):
                try:
                    if key.data is None:
                        data, src = self.sock.recvfrom(65535)
                        if self._drop(src):
                            continue
                        up = self._upstreams.get(src)
                        if up is None:
                            if len(self._upstreams) >= UPSTREAMS_MAX:
                                continue
                            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            up.bind(("127.0.0.1", 0))
                            self._upstreams[src] = up
                            self._sel.register(up, selectors.EVENT_READ, src)
                        up.sendto(data, self.target)
                    else:
                        data, _ = key.fileobj.recvfrom(65535)
                        if self._drop(key.data):
                            continue
                        self.sock.sendto(data, key.data)
                except OSError:
                    continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for up in self._upstreams.values():
            up.close()
        self.sock.close()

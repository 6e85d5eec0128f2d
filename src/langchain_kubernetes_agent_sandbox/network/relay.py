"""The relay inside a sandbox: accepts connections on the sandbox's own loopback and hands each one, as an open
descriptor, to the host-side proxy over its unix socket (bind-mounted into the sandbox). The proxy then talks to
the sandbox's program directly, so the relay carries no bytes, and decides nothing: code that kills or bypasses it
gains nothing, since the socket is the sandbox's only way out either way.

Run as `python3 relay.py PORT SOCKET [--foreground]`; stdlib only, since it runs on the sandbox's Python, not the
server's. It forks into the background once it listens, so whoever starts it knows that connections from then on
arrive; `--foreground` keeps it in its own process (the benchmark runs it so, to end it by its pid).
"""

from __future__ import annotations

import os
import socket
import sys

HANDOFF = b"\x00"
"""The one byte sent with a handed-off descriptor: no HTTP or SOCKS request starts with it."""
BACKLOG = 256
_CONNECT_TIMEOUT = 5.0


def hand_off(path: str, connection: socket.socket) -> None:
    """Give `connection` to the proxy at `path`; the relay's copy is closed by the caller."""
    with socket.socket(socket.AF_UNIX) as proxy:
        proxy.settimeout(_CONNECT_TIMEOUT)
        proxy.connect(path)
        socket.send_fds(proxy, [HANDOFF], [connection.fileno()])


def main(port: int, path: str, *, foreground: bool = False) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=BACKLOG)
    if not foreground:
        if os.fork():
            os._exit(0)
        os.setsid()
    while True:
        connection, _ = listener.accept()
        try:
            hand_off(path, connection)
        except OSError:
            pass  # no proxy (its server is restarting): the program sees the connection close
        finally:
            connection.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], foreground=sys.argv[3:] == ["--foreground"])

"""A listening socket inside a sandbox's network namespace, made by the server: a socket stays in the namespace it
was made in, so the proxy can accept the sandbox's connections on the sandbox's own loopback while it runs, and
connects out, on the host. No process inside relays anything, and nothing inside can end or replace the listener.

Entering a namespace is per thread (`setns(2)`), so a short-lived thread of its own enters, makes the socket and
ends; no other thread of the server ever changes namespace. It needs CAP_SYS_ADMIN over the namespace: root.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
BACKLOG = 256
_libc = ctypes.CDLL(None, use_errno=True)


def listen_inside(netns_fd: int, port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:`port` of the network namespace open at `netns_fd`."""
    made: list[socket.socket] = []
    failed: list[OSError] = []

    def make() -> None:
        try:
            if _libc.setns(netns_fd, CLONE_NEWNET) != 0:
                number = ctypes.get_errno()
                raise OSError(number, f"cannot enter the sandbox's network namespace: {os.strerror(number)}")
            made.append(socket.create_server(("127.0.0.1", port), backlog=BACKLOG))
        except OSError as error:
            failed.append(error)

    thread = threading.Thread(target=make, name="kas-egress-listen")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    made[0].setblocking(False)
    return made[0]

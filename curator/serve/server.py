"""Running ``curator serve``: the annotators' links, then uvicorn until Ctrl-C."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from curator import annotators
from curator.errors import InputError
from curator.workspace import Workspace

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Link:
    annotator: str
    url: str  # carries the token: printed once, never logged


def prepare(ws: Workspace, host: str, port: int, add: list[str]) -> tuple[socket.socket, list[Link]]:
    """Bind the listening socket (port 0: a free one), add ``add`` when missing, and make one
    fresh link per active annotator (a token is stored only as its hash, so each start
    issues new tokens: the old links stop working)."""
    for name in add:
        if not annotators.active(ws.conn, name):
            annotators.add(ws.conn, name)
    names = [a.name for a in annotators.listing(ws.conn) if a.revoked_at is None]
    if not names:
        raise InputError("no annotators yet", reason="no-annotators")
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    bound = sock.getsockname()[1]
    base = f"http://{shown}:{bound}/label?token="
    links = [Link(name, base + annotators.renew(ws.conn, name)) for name in names]
    return sock, links


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise InputError(f"port {port} on {host}: cannot listen there ({err.strerror})", key="port",
                         value=f"{host}:{port}", reason="cannot-listen") from err
    sock.listen(128)
    return sock


def run(ws: Workspace, sock: socket.socket, *, read_only: bool, links: list[Link], suggest: bool = False,
        on_ready: Callable[[], None] | None = None) -> None:
    import uvicorn

    from curator.serve.app import create_app

    app = create_app(ws, read_only=read_only, suggest=suggest,
                     prepare=tuple(link.annotator for link in links))
    # access_log off: a first visit's URL carries the annotator's token.
    config = uvicorn.Config(app, access_log=False, log_level="warning", lifespan="off")

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            # The links are printed once uvicorn handles Ctrl-C: one pressed during its start-up
            # (before its signal handlers) could be lost and leave the server running.
            if on_ready is not None and not self.should_exit:
                on_ready()

    Server(config).run(sockets=[sock])

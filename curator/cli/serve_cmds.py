"""``curator serve`` and ``curator annotators``: the web app and who may use it."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

SERVE_HELP = """Label, review and browse in a browser: one link per annotator.

Starts a local web app on the workspace (127.0.0.1 and a free port unless
--host / --port say otherwise) and prints one link per annotator; each start
gives every annotator a new link (their old one stops working). Pages: Label
(the queue and keys of `curator label`: class keys, s skip, u undo, x exclude),
Review (the findings and keys of `curator review`), Duplicates, Browse and
Agreement. Every answer is committed before the next image appears; the terminal
prompt can run at the same time. Ctrl-C stops the server.

Example: curator serve --annotator alice --annotator bob
"""

ANNOTATORS_HELP = """Manage the annotators who may open `curator serve`.

Each annotator has a secret token, stored only as a hash in the catalog.
`add NAME` prints the link path with the new token (shown once); `revoke NAME`
stops the token at once, even on a running server.

Example: curator annotators add carol
"""


@click.command(help=SERVE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback is plain HTTP on the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to listen on (0: a free one).")
@click.option("--annotator", "add", metavar="NAME", multiple=True,
              help="Add this annotator first if missing (repeatable).")
@click.option("--read-only", is_flag=True, help="Serve the pages without accepting answers or decisions.")
@click.option("--suggest", is_flag=True,
              help="Show the latest model's top two classes on the label page (not on blind images).")
@click.pass_obj
def serve(app: Any, host: str, port: int, add: tuple[str, ...], read_only: bool, suggest: bool) -> None:
    from curator import suggest as suggestions
    from curator.serve import server

    ws = app.workspace()
    if suggest:
        suggestions.required(ws.conn, ws.config.dataset.classes, "--suggest")
    if host not in server.LOOPBACK:
        app.out.warn(f"listening on {host}: traffic (tokens and images) is plain HTTP unless you put "
                     "the server behind TLS")
    sock, links = server.prepare(ws, host, port, list(add))

    def ready() -> None:
        mode = " (read-only)" if read_only else ""
        app.out.result({"links": {link.annotator: link.url for link in links}, "read_only": read_only},
                       lambda console: _print_links(console, links, mode))

    server.run(ws, sock, read_only=read_only, suggest=suggest, links=links, on_ready=ready)


def _print_links(console: Console, links: list[Any], mode: str) -> None:
    console.print(f"curator serve{mode}: one link per annotator (Ctrl-C stops)", markup=False)
    for link in links:
        console.print(f"  {link.annotator}: {link.url}", markup=False, soft_wrap=True)


@click.group(help=ANNOTATORS_HELP)
def annotators() -> None:
    pass


@annotators.command("add", help="Add an annotator; print their link path with the token (shown once).")
@click.argument("name")
@click.pass_obj
def add_annotator(app: Any, name: str) -> None:
    from curator import annotators as registry

    ws = app.workspace()
    token = registry.add(ws.conn, name)
    path = f"/label?token={token}"
    app.out.result({"name": name, "token": token, "path": path},
                   lambda console: console.print(f"Added {name}; link path (append to the server's address): "
                                                 f"{path}", markup=False, soft_wrap=True))


@annotators.command("list", help="List annotators and whether they are active.")
@click.pass_obj
def list_annotators(app: Any) -> None:
    from curator import annotators as registry

    people = registry.listing(app.workspace().conn)

    def render(console: Console) -> None:
        if not people:
            console.print("No annotators.", markup=False)
        for person in people:
            state = f"revoked {person.revoked_at}" if person.revoked_at else "active"
            console.print(f"{person.name}  added {person.created_at}  {state}", markup=False)

    app.out.result({"annotators": [p.as_dict() for p in people]}, render)


@annotators.command("revoke", help="Revoke an annotator's token; it stops working at once.")
@click.argument("name")
@click.pass_obj
def revoke_annotator(app: Any, name: str) -> None:
    from curator import annotators as registry

    registry.revoke(app.workspace().conn, name)
    app.out.result({"name": name, "revoked": True},
                   lambda console: console.print(f"Revoked {name}.", markup=False))


COMMANDS = [serve, annotators]

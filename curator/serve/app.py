"""The web app of ``curator serve``: who may ask what, and the routes.

Security
    Every request needs an active annotator's token: the link's ``?token=`` on the first
    visit (answered with an HttpOnly, SameSite=Strict cookie and a redirect that drops the
    token from the address bar), the cookie after. The token is looked up in the catalog
    on each request, so a revoked one stops at once. Writes are POSTs that also carry the
    page's CSRF token (an HMAC of the annotator's token under a per-process secret) in the
    ``X-CSRF-Token`` header. Images are served by sha256 only, from the objects store
    (originals) or made in memory (display and thumbnail sizes); no route maps a URL to
    a file path, so nothing else in the workspace can be reached. Access logging is off:
    URLs of a first visit carry the token.

Concurrency
    Handlers run in Starlette's thread pool and share the workspace's one connection under
    a lock; each answer is its own committed transaction (``labeling.record``,
    ``findings.decide``) before the response that shows the next image. Other processes
    (the terminal prompt, a second server) write the same catalog through SQLite's locks.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from PIL import Image, ImageOps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from curator import annotators, dedup, labeling, prompt, store, suggest
from curator.errors import InputError
from curator.review import findings
from curator.review import prompt as review_prompt
from curator.serve import views
from curator.workspace import Workspace

COOKIE = "curator_token"
PAGES = ("label", "review", "duplicates", "browse", "agreement")
SIZES = {"display": 1600, "thumb": 240}  # longest side in pixels; 'full' is the original
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
MEDIA = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
         "BMP": "image/bmp", "TIFF": "image/tiff"}
PREFETCH = 3
CACHE_BYTES = 256 * 2**20

class Denied(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class State:
    """What the server keeps between requests: one cursor per annotator (so a reload resumes
    where they were), resized images, and the lock around the catalog connection."""

    def __init__(self, ws: Workspace, read_only: bool, suggest: bool = False) -> None:
        self.ws = ws
        self.read_only = read_only
        self.suggest = suggest  # the label page shows the model's top two (curator serve --suggest)
        self.lock = threading.Lock()
        self.secret = secrets.token_bytes(32)
        self.labels: dict[str, prompt.Cursor] = {}
        self.reviews: dict[str, review_prompt.Cursor] = {}
        self.resized: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self.resized_bytes = 0
        self.resize_lock = threading.Lock()

    def csrf(self, token: str) -> str:
        return hmac.new(self.secret, token.encode(), hashlib.sha256).hexdigest()

    def prepare(self, names: list[str]) -> None:
        """Each annotator's queue and first images, made before the links are printed so the
        first page load does not wait for them."""
        for who in names:
            cursor = self.label_cursor(who)
            for item in cursor.items[: PREFETCH + 1]:
                resized(self, item.sha256, "display")

    def label_cursor(self, who: str) -> prompt.Cursor:
        cursor = self.labels.get(who)
        if cursor is None or (cursor.done and not cursor.history):
            items = labeling.queue(self.ws.conn, self.ws.config, who)
            cursor = prompt.Cursor(self.ws.conn, items, who, prompt.SessionResult(who, shown=len(items)),
                                   suggest=self.suggest)
            self.labels[who] = cursor
        return cursor

    def review_cursor(self, who: str) -> review_prompt.Cursor:
        cursor = self.reviews.get(who)
        if cursor is None or (cursor.done and not cursor.history):
            items = findings.listing(self.ws.conn, open_only=True)
            result = review_prompt.ReviewResult(who, shown=len(items))
            cursor = review_prompt.Cursor(self.ws, items, who, result)
            self.reviews[who] = cursor
        return cursor


Handler = Callable[[Request, "State", str], Awaitable[Response]]


def guard(handler: Handler, *, write: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """The handler, called only for an active annotator's cookie (and, for a write, the CSRF
    token of their page on a server that is not read-only)."""
    async def endpoint(request: Request) -> Response:
        state: State = request.app.state.curator
        try:
            token = request.cookies.get(COOKIE, "")
            with state.lock:
                who = annotators.lookup(state.ws.conn, token) if token else None
            if who is None:
                raise Denied(401, "Open the link that `curator serve` printed for you.")
            if write:
                if state.read_only:
                    raise Denied(403, "This server is read-only (curator serve --read-only).")
                sent = request.headers.get("x-csrf-token", "")
                if not hmac.compare_digest(sent, state.csrf(token)):
                    raise Denied(403, "Missing or wrong CSRF token; reload the page.")
            return await handler(request, state, who)
        except Denied as denied:
            return JSONResponse({"error": denied.reason}, status_code=denied.status)
    return endpoint


async def first_visit(request: Request) -> Response:
    state: State = request.app.state.curator
    ws = state.ws
    token = request.query_params.get("token")
    if token is None:
        return await guard(page)(request)
    with state.lock:
        who = annotators.lookup(ws.conn, token)
    if who is None:
        return JSONResponse({"error": "This link is not valid (a wrong or revoked token)."},
                            status_code=403)
    target = request.url.path if request.url.path.strip("/") in PAGES else "/label"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response

async def page(request: Request, state: State, who: str) -> Response:
    name = request.url.path.strip("/") or "label"
    if name not in PAGES:
        return JSONResponse({"error": "no such page"}, status_code=404)
    return HTMLResponse(render_page(name, who, state.csrf(request.cookies[COOKIE]), state.read_only))

async def static(request: Request, state: State, who: str) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return JSONResponse({"error": "not found"}, status_code=404)
    body = resources.files("curator.serve").joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC[name])

async def image(request: Request, state: State, who: str) -> Response:
    ws = state.ws
    sha = request.path_params["sha256"]
    size = request.query_params.get("size", "display")
    with state.lock:
        row = ws.conn.execute("SELECT format FROM images WHERE sha256 = ?", (sha,)).fetchone()
    if row is None or (size != "full" and size not in SIZES):
        return JSONResponse({"error": "not found"}, status_code=404)
    headers = {"Cache-Control": "private, max-age=86400, immutable"}
    if size == "full":
        return Response(store.read(ws.objects, sha), media_type=MEDIA.get(row[0]), headers=headers)
    return Response(resized(state, sha, size), media_type="image/jpeg", headers=headers)

async def label_state(request: Request, state: State, who: str) -> Response:
    with state.lock:
        return JSONResponse(label_view(state, who, ""))

async def label_key(request: Request, state: State, who: str) -> Response:
    key = str((await request.json()).get("key", ""))
    with state.lock:
        message = press_label_key(state, who, key)
        return JSONResponse(label_view(state, who, message))

async def review_state(request: Request, state: State, who: str) -> Response:
    with state.lock:
        return JSONResponse(review_view(state, who, ""))

async def review_key(request: Request, state: State, who: str) -> Response:
    body = await request.json()
    with state.lock:
        message = press_review_key(state, who, str(body.get("key", "")), body.get("label"))
        return JSONResponse(review_view(state, who, message))

async def duplicates(request: Request, state: State, who: str) -> Response:
    ws = state.ws
    with state.lock:
        return JSONResponse({"clusters": views.duplicate_clusters(ws.conn)})

async def split(request: Request, state: State, who: str) -> Response:
    ws = state.ws
    sha = str((await request.json()).get("sha256", ""))
    with state.lock:
        try:
            dedup.split_off(ws.conn, sha)
        except InputError as err:
            return JSONResponse({"error": err.message}, status_code=400)
        return JSONResponse({"clusters": views.duplicate_clusters(ws.conn)})

async def browse(request: Request, state: State, who: str) -> Response:
    ws = state.ws
    filters = {k: request.query_params.get(k, "") for k in views.BROWSE_FILTERS}
    with state.lock:
        return JSONResponse(views.browse(ws, filters))

async def agreement(request: Request, state: State, who: str) -> Response:
    ws = state.ws
    with state.lock:
        return JSONResponse(views.disagreements(ws))

async def adjudicate(request: Request, state: State, who: str) -> Response:
    ws = state.ws
    body = await request.json()
    sha, label = str(body.get("sha256", "")), body.get("label")
    if who != ws.config.labels.adjudicator:
        return JSONResponse({"error": "only the adjudicator of [labels] in curator.toml decides here"},
                            status_code=403)
    if label not in labeling.valid_labels(ws.config):
        return JSONResponse({"error": f"unknown class {label!r}"}, status_code=400)
    with state.lock:
        if ws.conn.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha,)).fetchone() is None:
            return JSONResponse({"error": "no such image"}, status_code=404)
        labeling.record(ws.conn, sha, who, str(label), "label", suggested=False)
        return JSONResponse(views.disagreements(ws))


ROUTES = [
    Route("/", first_visit),
    *[Route(f"/{name}", first_visit) for name in PAGES],
    Route("/static/{name}", guard(static)),
    Route("/img/{sha256:str}", guard(image)),
    Route("/api/label", guard(label_state)),
    Route("/api/label", guard(label_key, write=True), methods=["POST"]),
    Route("/api/review", guard(review_state)),
    Route("/api/review", guard(review_key, write=True), methods=["POST"]),
    Route("/api/duplicates", guard(duplicates)),
    Route("/api/duplicates/split", guard(split, write=True), methods=["POST"]),
    Route("/api/browse", guard(browse)),
    Route("/api/agreement", guard(agreement)),
    Route("/api/agreement", guard(adjudicate, write=True), methods=["POST"]),
]


def create_app(ws: Workspace, *, read_only: bool = False, suggest: bool = False,
               prepare: tuple[str, ...] = ()) -> Starlette:
    """The app; ``prepare``: annotators whose queues and first images to make now."""
    app = Starlette(routes=ROUTES)
    app.state.curator = State(ws, read_only, suggest)
    app.state.curator.prepare(list(prepare))
    return app


def resized(state: State, sha: str, size: str) -> bytes:
    """The image at a display or thumbnail size as JPEG, kept in a bounded in-memory cache."""
    key = (sha, size)
    with state.resize_lock:
        if key in state.resized:
            state.resized.move_to_end(key)
            return state.resized[key]
    with Image.open(io.BytesIO(store.read(state.ws.objects, sha))) as original:
        img = ImageOps.exif_transpose(original).convert("RGB")
    img.thumbnail((SIZES[size], SIZES[size]))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    with state.resize_lock:
        state.resized[key] = data
        state.resized_bytes += len(data)
        while state.resized_bytes > CACHE_BYTES:
            _, old = state.resized.popitem(last=False)
            state.resized_bytes -= len(old)
    return data


# ---------------------------------------------------------------------------------------------
# Label and review pages: the prompts' keys, the prompts' cursors


def press_label_key(state: State, who: str, key: str) -> str:
    cursor = state.label_cursor(who)
    keys = prompt.class_keys(state.ws.config)
    if key == "u":
        return cursor.undo()
    if cursor.done:
        return "Every image in this session has an answer; u undoes the last one"
    if key in keys:
        cursor.answer(keys[key], "label")
    elif key == "x":
        cursor.answer(labeling.EXCLUDED, "exclude")
    elif key == "s":
        cursor.skip()
    else:
        return f"Key {key!r} does nothing here; press ? for help"
    return ""


def label_view(state: State, who: str, message: str) -> dict[str, Any]:
    cursor = state.label_cursor(who)
    conn = state.ws.conn
    view: dict[str, Any] = {
        "annotator": who, "pos": cursor.pos, "total": len(cursor.items), "done": cursor.done,
        "message": message, "keys": prompt.class_keys(state.ws.config), "item": None,
        "next": [i.sha256 for i in cursor.items[cursor.pos + 1 : cursor.pos + 1 + PREFETCH]],
        "remaining": len(cursor.items) - cursor.pos,
    }
    if not cursor.done:
        item = cursor.items[cursor.pos]
        # A blind image shows no suggestion, hint, source or other annotator's label (curator.suggest);
        # each answer records whether a suggestion was on screen (prompt.Cursor).
        hidden = item.blind
        view["item"] = {
            "sha256": item.sha256, "width": item.width, "height": item.height, "format": item.format,
            "bytes": item.bytes, "source": "" if hidden else item.source, "hint": "" if hidden else item.hint,
            "label": None if hidden else item.label, "mine": item.mine, "blind": hidden,
            "suggestion": (suggest.describe(item.suggestion)
                           if cursor.shows_suggestion(item) and item.suggestion else None),
            "members": review_prompt.siblings(conn, item.sha256),
        }
    return view


def press_review_key(state: State, who: str, key: str, label: object) -> str:
    cursor = state.review_cursor(who)
    if key == "u":
        return cursor.undo()
    if cursor.done:
        return "No open findings left in this session; u undoes the last decision"
    item = cursor.items[cursor.pos]
    if key in review_prompt.KEYS:
        cursor.decide(review_prompt.KEYS[key], None)
    elif key == "r" and isinstance(label, str) and label in state.ws.config.dataset.classes:
        cursor.decide("relabel", label)
    elif key == "a" and item.get("suggested_label"):
        cursor.decide("relabel", item["suggested_label"])
    elif key == "s":
        cursor.skip()
    else:
        return f"Key {key!r} does nothing here; press ? for help"
    return ""


def review_view(state: State, who: str, message: str) -> dict[str, Any]:
    cursor = state.review_cursor(who)
    view: dict[str, Any] = {
        "reviewer": who, "pos": cursor.pos, "total": len(cursor.items), "done": cursor.done,
        "message": message, "keys": prompt.class_keys(state.ws.config), "item": None,
        "next": [i["sha256"] for i in cursor.items[cursor.pos + 1 : cursor.pos + 1 + PREFETCH]],
    }
    if not cursor.done:
        item = dict(cursor.items[cursor.pos])
        item["status"] = findings.status_of(state.ws.conn, item["id"])
        item["members"] = review_prompt.siblings(state.ws.conn, item["sha256"])
        view["item"] = item
    return view


def render_page(name: str, who: str, csrf: str, read_only: bool) -> str:
    template = resources.files("curator.serve").joinpath("static", "page.html").read_text(encoding="utf-8")
    nav = "".join(
        f'<a href="/{p}"{" class=current" if p == name else ""}>{p.capitalize()}</a>' for p in PAGES
    )
    config = json.dumps({"page": name, "annotator": who, "readOnly": read_only})
    return (template.replace("{{title}}", name.capitalize()).replace("{{nav}}", nav)
            .replace("{{csrf}}", csrf).replace("{{config}}", config.replace("<", "\\u003c"))
            .replace("{{who}}", _escape(who)))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

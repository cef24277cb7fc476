"""Fetching image URLs over HTTP: bounded, polite, retried, size-capped.

One :class:`Fetcher` per run wraps an ``httpx.AsyncClient``. For each URL it

1. checks ``robots.txt`` (fetched once per origin and cached) unless robots are ignored,
2. sends a GET with the configured User-Agent, holding one global slot and one per-host slot,
3. follows redirects itself (so each hop is checked and the final URL recorded), up to a cap,
4. refuses ``X-Robots-Tag: noai`` / ``noimageai`` unless told not to,
5. streams the body, stopping as soon as it passes ``max_bytes``,
6. retries 429, 5xx, timeouts and connection errors with exponential backoff,
   waiting ``Retry-After`` instead when the server sends one (never longer than the cap).

Failures are returned as :class:`Fetched` with a ``reason`` code, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
import urllib.robotparser
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from curator.catalog import utcnow
from curator.config import IngestConfig

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Connections per httpx client. httpcore scans its whole pool for every request it
# queues or finishes, so one pool of hundreds of connections costs more CPU than the
# downloads; several small clients keep that scan short (measured in benchmarks/ingest_speed.py).
CONNECTIONS_PER_CLIENT = 16
ROBOTS_MAX_BYTES = 512_000
_NOAI = frozenset({"noai", "noimageai"})


@dataclass(frozen=True)
class Fetched:
    url: str
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    data: bytes | None = None
    reason: str | None = None  # None: success, data holds the body
    transient: bool = False
    fetched_at: str = ""
    retry_after: float | None = None


def robots_policy(cfg: IngestConfig) -> str:
    """What ``sources.robots`` records about the opt-out rules this run followed."""
    if cfg.respect_robots and cfg.respect_noai:
        return "respected"
    if not cfg.respect_robots and not cfg.respect_noai:
        return "ignored"
    return "robots-ignored" if not cfg.respect_robots else "noai-ignored"


class Fetcher:
    """Use as ``async with Fetcher(cfg) as f: await f.fetch(url)``."""

    def __init__(self, cfg: IngestConfig) -> None:
        self.cfg = cfg
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(cfg.per_host)
        )
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._robots_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        timeout = httpx.Timeout(cfg.read_timeout, connect=cfg.connect_timeout, pool=None)
        count = -(-cfg.concurrency // CONNECTIONS_PER_CLIENT)
        size = -(-cfg.concurrency // count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        tls = httpx.create_ssl_context()  # one for all clients: building one reads the CA bundle
        self.clients = [
            httpx.AsyncClient(
                verify=tls,
                timeout=timeout,
                limits=limits,
                headers={"User-Agent": cfg.user_agent, "Accept": "image/*,*/*;q=0.5"},
                follow_redirects=False,
                trust_env=False,  # no proxies or netrc from the environment: only what the user asked for
            )
            for _ in range(count)
        ]
        # The global limit: one token per request in flight, each naming the client it may use,
        # so that no client ever has more requests than connections.
        self._tokens: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for i in range(cfg.concurrency):
            self._tokens.put_nowait(self.clients[i % count])

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients:
            await client.aclose()

    async def fetch(self, url: str) -> Fetched:
        """Fetch with retries; the last attempt's result is returned."""
        attempt = 0
        while True:
            result = await self._fetch_redirects(url)
            if not result.transient or attempt >= self.cfg.retries:
                return result
            delay = self.cfg.backoff * 2**attempt
            if result.retry_after is not None:
                delay = result.retry_after
            await asyncio.sleep(min(delay, self.cfg.max_retry_after))
            attempt += 1

    async def _fetch_redirects(self, url: str) -> Fetched:
        current = url
        seen = {url}
        for _hop in range(self.cfg.max_redirects + 1):
            if self.cfg.respect_robots:
                refused = await self._robots_refusal(url, current)
                if refused is not None:
                    return refused
            result, location = await self._get(url, current)
            if location is None:
                return result
            if urlsplit(location).scheme not in ("http", "https"):
                return _fail(url, current, "bad-redirect", status=result.status)
            if location in seen:
                return _fail(url, location, "redirect-loop", status=result.status)
            seen.add(location)
            current = location
        return _fail(url, current, "too-many-redirects")

    async def _get(self, url: str, current: str) -> tuple[Fetched, str | None]:
        """One GET. Returns the result, or the next location when the answer is a redirect."""
        deadline = self.cfg.connect_timeout + 4 * self.cfg.read_timeout
        try:
            async with self._slot(current) as client, asyncio.timeout(deadline):
                async with client.stream("GET", current) as resp:
                    return await self._read(url, current, resp)
        except (TimeoutError, httpx.TimeoutException):
            return _fail(url, current, "timeout", transient=True), None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            return _fail(url, current, "malformed-line"), None
        except httpx.TransportError:
            return _fail(url, current, "connection-error", transient=True), None

    async def _read(self, url: str, current: str, resp: httpx.Response) -> tuple[Fetched, str | None]:
        status = resp.status_code
        ctype = resp.headers.get("content-type")
        location = resp.headers.get("location")
        if status in REDIRECTS and location:
            return _fail(url, current, "redirect", status=status), urljoin(current, location)
        if status != 200:
            transient = status in (408, 429) or status >= 500
            retry_after = _retry_after(resp.headers.get("retry-after")) if transient else None
            return _fail(url, current, f"http-{status}", status, ctype, transient, retry_after), None
        if self.cfg.respect_noai and _says_noai(resp.headers.get_list("x-robots-tag")):
            return _fail(url, current, "noai", status, ctype), None
        length = resp.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.cfg.max_bytes:
            return _fail(url, current, "too-large", status, ctype), None
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > self.cfg.max_bytes:
                return _fail(url, current, "too-large", status, ctype), None
            chunks.append(chunk)
        data = b"".join(chunks)
        return Fetched(url, current, status, ctype, data, None, False, utcnow()), None

    @contextlib.asynccontextmanager
    async def _slot(self, url: str) -> AsyncIterator[httpx.AsyncClient]:
        """A per-host slot, then a global one (so a busy host never holds global slots while waiting)."""
        async with self._hosts[urlsplit(url).netloc.lower()]:
            client = await self._tokens.get()
            try:
                yield client
            finally:
                self._tokens.put_nowait(client)

    async def _robots_refusal(self, url: str, current: str) -> Fetched | None:
        parts = urlsplit(current)
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        async with self._robots_locks[origin]:
            if origin not in self._robots:
                self._robots[origin] = await self._load_robots(origin)
        parser = self._robots[origin]
        if parser is None:
            return _fail(url, current, "robots-unavailable", transient=True)
        if not parser.can_fetch(self.cfg.user_agent, current):
            return _fail(url, current, "robots-disallowed")
        return None

    async def _load_robots(self, origin: str) -> urllib.robotparser.RobotFileParser | None:
        """The origin's rules; None when robots.txt could not be fetched (5xx, timeout)."""
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            async with self._slot(origin) as client, asyncio.timeout(
                self.cfg.connect_timeout + self.cfg.read_timeout
            ):
                resp = await client.get(origin + "/robots.txt", follow_redirects=True)
        except (TimeoutError, httpx.HTTPError):
            return None
        if resp.status_code in (401, 403):  # the usual reading: access denied means everything is
            parser.parse(["User-agent: *", "Disallow: /"])
        elif 400 <= resp.status_code < 500:  # no robots.txt: everything is allowed
            parser.parse([])
        elif resp.status_code != 200:
            return None
        else:
            text = resp.content[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace")
            parser.parse(text.splitlines())
        return parser


def _says_noai(values: list[str]) -> bool:
    """``X-Robots-Tag: noai``, ``noimageai``, also in a list or after a ``botname:`` prefix."""
    for value in values:
        for token in value.lower().replace(":", ",").split(","):
            if token.strip() in _NOAI:
                return True
    return False


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _fail(
    url: str,
    current: str,
    reason: str,
    status: int | None = None,
    ctype: str | None = None,
    transient: bool = False,
    retry_after: float | None = None,
) -> Fetched:
    return Fetched(url, current, status, ctype, None, reason, transient, utcnow(), retry_after)

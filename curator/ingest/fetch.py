"""Fetching image URLs over HTTP: bounded, polite, retried, size-capped.

One :class:`Fetcher` per run wraps an ``aiohttp.ClientSession``. For each URL it

1. checks ``robots.txt`` (fetched once per origin and cached) unless robots are ignored,
2. sends a GET with the configured User-Agent, holding one global slot and one per-host slot,
3. follows redirects itself (so each hop is checked and the final URL recorded), up to a cap,
4. refuses ``X-Robots-Tag: noai`` / ``noimageai`` unless told not to,
5. streams the body, stopping as soon as it passes ``max_bytes``,
6. retries 429, 5xx, timeouts and connection errors with exponential backoff,
   waiting ``Retry-After`` instead when the server sends one (never longer than the cap).

Failures are returned as :class:`Fetched` with a ``reason`` code, never raised.

aiohttp rather than httpx (which the Hub client uses), because on two cores the event
loop's CPU is taken from decoding and the catalog. ``python benchmarks/fetch_cpu.py``
(2,027 loopback URLs, 256 in flight, CPU of the whole process, medians of 3): this
Fetcher 0.84 s, a bare aiohttp loop 0.61 s, httpx 3.04 s with 16 clients of 16
connections (what our httpx Fetcher did; one pool of 256 took ~13 s). For the same
reason the loop is uvloop's where it is installed (:func:`loop_factory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl
import time
import urllib.robotparser
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
import certifi

from curator.catalog import utcnow
from curator.config import IngestConfig

REDIRECTS = frozenset({301, 302, 303, 307, 308})
ROBOTS_MAX_BYTES = 512_000
CHUNK = 1 << 16
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


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (it is not on Windows), else None: asyncio's.

    The loop's own CPU is held under the GIL, which the decoding and catalog threads wait
    for: benchmarks/fetch_cpu.py, 2,027 URLs, medians of 7: 0.82 -> 0.69 s for this Fetcher.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def robots_policy(cfg: IngestConfig) -> str:
    """What ``sources.robots`` records about the opt-out rules this run followed."""
    if cfg.respect_robots and cfg.respect_noai:
        return "respected"
    if not cfg.respect_robots and not cfg.respect_noai:
        return "ignored"
    return "robots-ignored" if not cfg.respect_robots else "noai-ignored"


class SharedHosts(Protocol):
    """Per-host slots and pauses that several fetchers share (a cluster's: curator.ingest.remote)."""

    def slot(self, host: str) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def pause(self, host: str, seconds: float) -> None: ...


Robots = dict[str, urllib.robotparser.RobotFileParser | None]  # origin -> its rules (None: unavailable)


class Fetcher:
    """Use as ``async with Fetcher(cfg) as f: await f.fetch(url)``.

    ``hosts``: per-host slots shared with other fetchers instead of this one's own, and a
    Retry-After then pauses the host for all of them; ``robots``: a cache kept beyond this fetcher.
    """

    def __init__(
        self, cfg: IngestConfig, hosts: SharedHosts | None = None, robots: Robots | None = None
    ) -> None:
        self.cfg = cfg
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(cfg.per_host)
        )
        self._shared = hosts
        self._global = asyncio.Semaphore(cfg.concurrency)
        self._robots: Robots = {} if robots is None else robots
        self._robots_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        # Our semaphores bound the requests; the connector only pools their connections.
        connector = aiohttp.TCPConnector(
            limit=self.cfg.concurrency,
            limit_per_host=0,
            ssl=ssl.create_default_context(cafile=certifi.where()),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.cfg.connect_timeout, sock_read=self.cfg.read_timeout
            ),
            headers={"User-Agent": self.cfg.user_agent, "Accept": "image/*,*/*;q=0.5"},
            trust_env=False,  # no proxies or netrc from the environment: only what the user asked for
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use Fetcher as `async with Fetcher(cfg) as fetcher`")
        return self._session

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
                if self._shared is not None:  # every fetcher of the cluster waits, not this URL only
                    host = urlsplit(result.final_url or url).netloc.lower()
                    await self._shared.pause(host, min(delay, self.cfg.max_retry_after))
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
            async with self._slot(current), asyncio.timeout(deadline):
                async with self.session.get(current, allow_redirects=False) as resp:
                    return await self._read(url, current, resp)
        except TimeoutError:  # aiohttp's connect and read timeouts are TimeoutErrors too
            return _fail(url, current, "timeout", transient=True), None
        except (aiohttp.InvalidURL, ValueError):
            return _fail(url, current, "malformed-line"), None
        except aiohttp.ClientError:
            return _fail(url, current, "connection-error", transient=True), None

    async def _read(
        self, url: str, current: str, resp: aiohttp.ClientResponse
    ) -> tuple[Fetched, str | None]:
        status = resp.status
        ctype = resp.headers.get("content-type")
        location = resp.headers.get("location")
        if status in REDIRECTS and location:
            return _fail(url, current, "redirect", status=status), urljoin(current, location)
        if status != 200:
            transient = status in (408, 429) or status >= 500
            retry_after = _retry_after(resp.headers.get("retry-after")) if transient else None
            return _fail(url, current, f"http-{status}", status, ctype, transient, retry_after), None
        if self.cfg.respect_noai and _says_noai(resp.headers.getall("x-robots-tag", [])):
            return _fail(url, current, "noai", status, ctype), None
        if resp.content_length is not None and resp.content_length > self.cfg.max_bytes:
            return _fail(url, current, "too-large", status, ctype), None
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > self.cfg.max_bytes:
                return _fail(url, current, "too-large", status, ctype), None
            chunks.append(chunk)
        data = b"".join(chunks)
        return Fetched(url, current, status, ctype, data, None, False, utcnow()), None

    @contextlib.asynccontextmanager
    async def _slot(self, url: str) -> AsyncIterator[None]:
        """A per-host slot, then a global one (so a busy host never holds global slots while waiting)."""
        host = urlsplit(url).netloc.lower()
        async with self._shared.slot(host) if self._shared else self._hosts[host], self._global:
            yield

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
            limit = self.cfg.connect_timeout + self.cfg.read_timeout
            async with self._slot(origin), asyncio.timeout(limit):
                robots = origin + "/robots.txt"
                async with self.session.get(robots, max_redirects=self.cfg.max_redirects) as resp:
                    status = resp.status
                    body = await resp.content.read(ROBOTS_MAX_BYTES) if status == 200 else b""
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None
        if status in (401, 403):  # the usual reading: access denied means everything is
            parser.parse(["User-agent: *", "Disallow: /"])
        elif 400 <= status < 500:  # no robots.txt: everything is allowed
            parser.parse([])
        elif status != 200:
            return None
        else:
            parser.parse(body.decode("utf-8", errors="replace").splitlines())
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

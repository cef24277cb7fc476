"""Where the per-image work runs: on this machine, or as Ray tasks on a cluster.

The stages keep their local pools (ingest's decode threads, review's threads,
preprocess's processes). With ``[engine] kind = "ray"`` (or ``--engine ray``) they
hand batches to :func:`submit` or :func:`map_batches` instead: one Ray task per batch,
each result back on the driver, which stays the only writer of ``catalog.sqlite``
and commits one transaction per batch, as the local engine does. Nothing else
changes: the same functions compute the same values, so the catalog, its clusters
and the release bytes are the same on either engine.

Bytes travel through Ray's object store, not a shared filesystem: the driver sends
originals to the workers (review, release) and gets fetched bytes back (ingest), and
only the driver reads and writes ``objects/``. Workers need curator installed and
nothing mounted; the price is that every image crosses the driver's network link
once or twice (README, "Running on a cluster", has the measured limits).

A task whose worker process dies is run again by Ray (``MAX_RETRIES``); its results
reach the driver once, so nothing is lost or doubled.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from curator.config import EngineConfig
from curator.errors import EngineError

if TYPE_CHECKING:
    import ray

J = TypeVar("J")
P = TypeVar("P")
R = TypeVar("R")


@contextlib.contextmanager
def single_threaded_opencv() -> Iterator[None]:
    """OpenCV calls without OpenCV's own thread pool, for the duration.

    Every stage runs one OpenCV call per image on each of its own workers, on images of a few
    hundred pixels; OpenCV's pool on top of that only spins waiting for work
    (~1M sched_yield calls per 2,000 images; a third less system CPU without it).
    """
    import cv2  # ~0.03 s

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster's address before giving up
MAX_RETRIES = 3  # runs of a task whose worker died, after the first


def is_ray(cfg: EngineConfig) -> bool:
    return cfg.kind == "ray"


@contextlib.contextmanager
def session(cfg: EngineConfig) -> Iterator[None]:
    """Ray connected for the duration: to ``address``, or when it is empty to the cluster that
    ``ray start`` left on this machine, else to a Ray started here and stopped after.

    Nothing happens for the local engine, or when this process is connected already.
    Raises :class:`EngineError` with the fix when Ray is missing or the cluster is unreachable,
    before any stage has touched the workspace.
    """
    if not is_ray(cfg):
        yield
        return
    ray = _import_ray()
    if ray.is_initialized():
        yield
        return
    try:
        _check_reachable(cfg.address)
        ray.init(address=cfg.address or None, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=False)
    except (OSError, RuntimeError, ValueError) as err:  # ConnectionError is an OSError
        where = cfg.address or "a local Ray instance"
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise EngineError(
            f"engine ray: cannot reach {where} ({reason})", key="engine", value="ray",
            reason="engine-unreachable",
        ) from err
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail within seconds for a ``host:port`` nobody listens on (Ray itself retries for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or empty: Ray finds or starts the cluster itself
    with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
        pass


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise EngineError("engine ray: Ray is not installed", key="engine", value="ray",
                          reason="ray-not-installed") from err
    return ray


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def submit(fn: Callable[[J, list[P]], R], job: J | ray.ObjectRef[J], batch: list[P]) -> ray.ObjectRef[R]:
    """``fn(job, batch)`` as one Ray task (named after ``fn``); await or ``ray.get`` the result."""
    return _task(_call).options(name=fn.__name__).remote(fn, job, batch)


def map_batches(
    fn: Callable[[J, P], R], job: J, batches: Iterable[list[P]], window: int | None = None
) -> Iterator[list[R]]:
    """``[fn(job, item) for item in batch]`` for each batch, one Ray task each, yielded in input order.

    At most ``window`` batches are in flight (default: two per CPU of the cluster), so the
    driver holds a bounded number of results whatever the input's length.
    """
    import ray

    shared = ray.put(job)  # sent to the object store once, not with every task
    window = window or 2 * cluster_cpus()
    each = _task(_call_each).options(name=fn.__name__)
    pending: deque[ray.ObjectRef[list[R]]] = deque()
    for batch in batches:
        pending.append(each.remote(fn, shared, batch))
        if len(pending) >= window:
            yield ray.get(pending.popleft())
    while pending:
        yield ray.get(pending.popleft())


@functools.cache
def _task(body: Callable[..., Any]) -> Any:
    import ray

    return ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(body)


def _call(fn: Callable[[J, list[P]], R], job: J, batch: list[P]) -> R:
    return fn(job, batch)


def _call_each(fn: Callable[[J, P], R], job: J, batch: list[P]) -> list[R]:
    return [fn(job, item) for item in batch]

"""`marauder download`: FathomNet images + YOLO labels + metadata, concurrent, retrying, resumable."""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import MarauderError
from ...fsio import sha256_file
from ...log import get_logger, progress
from .client import FathomNetClient, ImageHost
from .concepts import AskedConcept, resolve
from .records import image_entry, image_file_name
from .report import ConceptSummary, print_summary
from .retry import HttpStatusError, RetryPolicy, TransientError
from .store import FathomNetStore, compact, write_replace

log = get_logger("download")
_CHUNK = 1 << 16
_SAFE_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class FathomNetUnavailable(MarauderError):
    """The API kept failing after every retry."""


class BadImage(Exception):
    """The server's bytes match its checksum but are not an image: retrying cannot help."""


@dataclass(frozen=True)
class DownloadOptions:
    concepts: list[str]
    classes: list[str]
    aliases: dict[str, list[str]]
    limit: int | None = 1000
    include_descendants: bool = True
    page_size: int = 100
    concurrency: int = 16
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    filters: dict = field(default_factory=dict)  # GeoImageConstraints fields (minDepth, ...)


@dataclass
class DownloadResult:
    classes: list[str]
    asked: list[AskedConcept]
    summaries: list[ConceptSummary]
    downloaded: int
    present: int
    failures: dict[str, str]  # uuid -> reason
    metadata: Path


# -- listing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Item:
    """What a listing keeps per image: enough to fetch it, plus its metadata as one JSON line."""

    uuid: str
    url: str
    sha256: str | None
    entry: str


def _list_concept(client: FathomNetClient, concept: str, opts: DownloadOptions) -> list[_Item]:
    """Image records labelled with one concept, paged, up to `limit` of them (as compact items:
    the client's DTOs weigh ~6 KB each and are dropped page by page)."""
    from fathomnet.dto import GeoImageConstraints

    found: list[_Item] = []
    offset = 0
    while opts.limit is None or len(found) < opts.limit:
        page = client.find_images(GeoImageConstraints(concept=concept, limit=opts.page_size, offset=offset,
                                                      **opts.filters))
        for dto in page:
            if dto.uuid and not _SAFE_UUID.fullmatch(dto.uuid):  # it becomes a file name: no '/', no '..'
                log.warning("skipping an image record with an unsafe uuid %r", dto.uuid)
                continue
            if dto.uuid and dto.url:
                entry = image_entry(dto, image_file_name(dto.uuid, dto.url))
                found.append(_Item(dto.uuid, dto.url, dto.sha256, compact(entry)))
        if len(page) < opts.page_size:
            break
        offset += opts.page_size
    return found


def _select(asked: AskedConcept, listed: dict[str, list], limit: int | None) -> list:
    """An asked concept's images: its concepts in order, unique, the first `limit`."""
    chosen: dict[str, object] = {}
    for concept in asked.concepts:
        for dto in listed[concept]:
            if limit is not None and len(chosen) >= limit:
                return list(chosen.values())
            chosen.setdefault(dto.uuid, dto)
    return list(chosen.values())


def _concept_to_class(asked: list[AskedConcept]) -> dict[str, int]:
    """A concept under two asked names goes to the one that named it directly, else the first."""
    mapping: dict[str, int] = {}
    for a in asked:
        for c in a.concepts:
            mapping.setdefault(c, a.class_index)
    for a in asked:
        for root in a.roots:
            if root in a.concepts:
                mapping[root] = a.class_index
    return mapping


# -- one image ------------------------------------------------------------------------------
def _import_for_fetching() -> None:
    """Import what each fetched image needs (the decoder, numpy for the label writer) while concepts
    are resolved and listed: those steps wait on the network, and the first fetches would otherwise
    queue on the import lock."""
    from PIL import Image

    from ...formats import yolo  # noqa: F401

    Image.preinit()


def _image_ok(data: bytes | bytearray) -> tuple[int, int]:
    """(width, height) of a decodable image; BadImage otherwise. A JPEG is decoded at 1/8 scale
    (libjpeg's DCT scaling): the whole entropy-coded stream is still read, so truncation and
    corruption show, at a fraction of the cost of a full decode."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            im.draft("L", (max(1, size[0] // 8), max(1, size[1] // 8)))
            im.load()
    except Exception as exc:
        raise BadImage(f"does not decode as an image ({type(exc).__name__})") from None
    return size


def _fetch_once(host: ImageHost, url: str, expected_sha: str | None) -> tuple[bytearray, str]:
    """One image's bytes, checked for length and checksum, and their sha256. They are held in memory
    (the decode check needs them whole anyway: one image per download thread) and written only once
    they pass, so a failed or retried fetch never touches the disk."""
    h = hashlib.sha256()
    body = bytearray()
    with host.get(url) as resp:
        length = resp.headers.get("Content-Length")
        for chunk in resp.stream(_CHUNK):
            h.update(chunk)
            body += chunk
    if length is not None and len(body) != int(length):
        raise TransientError(f"truncated body: {len(body)} of {length} bytes")
    if expected_sha and h.hexdigest() != expected_sha.lower():
        raise TransientError("sha256 mismatch")
    return body, h.hexdigest()


def _download_image(store: FathomNetStore, host: ImageHost, item: _Item, opts: DownloadOptions) -> tuple[str, dict]:
    """Returns ("present" | "downloaded", entry). Raises on a permanent failure."""
    entry = json.loads(item.entry)
    name = entry["file"]
    final = store.images / name
    if final.is_file():
        known = store.entry(name)
        expected = (item.sha256 or (known or {}).get("sha256") or "").lower()
        if expected and sha256_file(final) == expected:
            entry["sha256"] = expected
            if known is None or not known.get("width"):
                entry["width"], entry["height"] = _image_ok(final.read_bytes())
            else:
                entry["width"], entry["height"] = known["width"], known["height"]
            return "present", entry
    body, digest = opts.policy.call(lambda: _fetch_once(host, item.url, item.sha256))
    entry["width"], entry["height"] = _image_ok(body)
    entry["sha256"] = entry["sha256"] or digest
    write_replace(final, body)
    return "downloaded", entry


def _fetch_and_record(store: FathomNetStore, host: ImageHost, item: _Item, opts: DownloadOptions,
                      mapping: dict[str, int], classes: list[str]) -> tuple[str, dict]:
    status, entry = _download_image(store, host, item, opts)
    store.add(entry, mapping, classes)
    return status, entry


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HttpStatusError):
        return f"HTTP {exc.status}"
    return str(exc) or type(exc).__name__


def _unavailable(exc: BaseException, what: str, policy: RetryPolicy) -> FathomNetUnavailable:
    if isinstance(exc, HttpStatusError):
        return FathomNetUnavailable(f"{what} failed after {policy.max_retries} retries: HTTP {exc.status} "
                                    f"from {exc.url}")
    req = getattr(exc, "request", None)
    url = getattr(req, "url", None) or "the FathomNet API"
    return FathomNetUnavailable(f"{what} failed after {policy.max_retries} retries: cannot reach {url} "
                                f"({type(exc).__name__})")


# -- the stage ------------------------------------------------------------------------------
def run_download(opts: DownloadOptions, images_dir: Path, labels_dir: Path, metadata_path: Path) -> DownloadResult:
    import requests

    threading.Thread(target=_import_for_fetching, name="imports", daemon=True).start()
    store = FathomNetStore(images_dir, labels_dir, metadata_path)
    store.prepare()  # fails before any network traffic when the output is not writable
    client = FathomNetClient.configure(opts.policy, opts.timeout, opts.concurrency)
    log.info("FathomNet API %s, WoRMS %s", client.api_url, client.worms_url)
    try:
        classes, asked = resolve(opts.concepts, opts.classes, opts.aliases, client, opts.include_descendants)
    except (HttpStatusError, requests.RequestException) as exc:
        raise _unavailable(exc, "resolving concepts", opts.policy) from None
    for a in asked:
        more = f" (+{len(a.concepts) - 6} more)" if len(a.concepts) > 6 else ""
        log.info("'%s' -> class %d %s via %s: %s%s", a.asked, a.class_index, a.class_name, a.via,
                 ", ".join(a.concepts[:6]), more)
        if a.class_name not in opts.classes:
            log.warning("'%s' is not in general.classes: appended as class %d '%s'", a.asked, a.class_index,
                        a.class_name)
    mapping = _concept_to_class(asked)
    _update_header(store, client, classes, asked, mapping)
    store.write_classes(classes)

    summaries = [ConceptSummary(a.asked, a.class_name, len(a.concepts)) for a in asked]
    failures: dict[str, str] = {}
    counts = {"downloaded": 0, "present": 0}
    host = ImageHost(opts.timeout, opts.concurrency)
    with ThreadPoolExecutor(max_workers=opts.concurrency, thread_name_prefix="fathomnet") as pool:
        t0 = time.monotonic()
        concepts = list(dict.fromkeys(c for a in asked for c in a.concepts))
        listings = {c: pool.submit(_list_concept, client, c, opts) for c in concepts}
        try:
            listed = {c: f.result() for c, f in listings.items()}
        except (HttpStatusError, requests.RequestException) as exc:
            raise _unavailable(exc, "listing images", opts.policy) from None
        per_concept = [_select(a, listed, opts.limit) for a in asked]
        for a, records in zip(asked, per_concept):
            if not records:
                log.warning("no images for '%s' (%s) with these filters", a.asked, ", ".join(a.concepts))
        log.info("listed %d concepts in %.2f s", len(concepts), time.monotonic() - t0)
        todo: dict[str, _Item] = {}
        owners: dict[str, list[int]] = {}
        for i, records in enumerate(per_concept):
            summaries[i].found = len(records)
            for item in records:
                todo.setdefault(item.uuid, item)
                owners.setdefault(item.uuid, []).append(i)
        del listed, per_concept  # from here on each item lives until it is handed to a worker
        total = len(todo)
        log.info("%d images to fetch (%d already on disk are checked, not re-downloaded)", total,
                 sum((images_dir / image_file_name(u, d.url)).is_file() for u, d in todo.items()))
        lock = threading.Lock()

        def finished(fut: Future, uuid: str) -> None:
            try:
                status, entry = fut.result()
            except Exception as exc:  # one bad image never stops the run
                failures[uuid] = _reason(exc)
                log.warning("image %s failed: %s", uuid, failures[uuid])
                for i in owners[uuid]:
                    summaries[i].failed += 1
                return
            with lock:
                counts[status] += 1
                for i in owners[uuid]:
                    setattr(summaries[i], status, getattr(summaries[i], status) + 1)
                    summaries[i].boxes += sum(b["class_index"] == asked[i].class_index for b in entry["boxes"])

        def completions():
            # Keep a bounded number in flight so memory stays flat however many images there are.
            # Finished futures arrive on a queue: waiting on all pending ones for each image costs
            # the main thread O(in flight) lock work per image, GIL time the workers need.
            done: queue.SimpleQueue = queue.SimpleQueue()
            waiting = list(todo)
            waiting.reverse()  # pop() from the end keeps the listing order
            budget, in_flight = opts.concurrency * 4, 0
            while in_flight or waiting:
                while waiting and in_flight < budget:
                    uuid = waiting.pop()
                    fut = pool.submit(_fetch_and_record, store, host, todo.pop(uuid), opts, mapping, classes)
                    fut.add_done_callback(lambda f, u=uuid: done.put((f, u)))
                    in_flight += 1
                fut, uuid = done.get()
                in_flight -= 1
                finished(fut, uuid)
                yield fut

        t0 = time.monotonic()
        try:
            for _ in progress(completions(), "downloading", total, rate_unit="img"):
                pass
        except BaseException:  # Ctrl-C and the like: leave metadata.json current (the journal stays)
            store.flush()
            raise
        elapsed = time.monotonic() - t0
        log.info("fetched %d images in %.2f s (%.1f images/s)", total, elapsed, total / max(elapsed, 1e-9))
    relabelled = store.relabel_all(mapping, classes)
    if relabelled:
        log.info("rewrote %d label files for the current class mapping", relabelled)
    store.header["failed"] = {u: failures[u] for u in sorted(failures)}
    store.flush(final=True)
    print_summary(summaries, counts, failures)
    return DownloadResult(classes, asked, summaries, counts["downloaded"], counts["present"], failures,
                          metadata_path)


def _update_header(store: FathomNetStore, client: FathomNetClient, classes: list[str],
                   asked: list[AskedConcept], mapping: dict[str, int]) -> None:
    """Merge this run's classes and concept mapping with what earlier runs recorded."""
    old = store.header
    old_classes = list(old.get("classes", []))
    for c in old_classes:
        if c not in classes:
            classes.append(c)
    old_map = {k: old_classes[v] for k, v in old.get("concept_classes", {}).items() if v < len(old_classes)}
    for concept, cname in old_map.items():
        mapping.setdefault(concept, classes.index(cname))
    old_asked = [a for a in old.get("asked", []) if a.get("asked") not in {x.asked for x in asked}]
    store.header = {
        "source": "fathomnet",
        "api_url": client.api_url,
        "classes": classes,
        "group_key": "group",
        "asked": [a.as_dict() for a in asked] + old_asked,
        "concept_classes": dict(sorted(mapping.items())),
        "note": "boxes whose class is null are concepts nobody asked for; they are not in the labels",
    }

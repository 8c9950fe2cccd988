"""A fake FathomNet (API + WoRMS + image host) on 127.0.0.1, for tests and benchmarks.

It answers the endpoints fathomnet-py calls, in the JSON shapes its DTOs parse, and serves real
JPEG files as the images. Faults can be injected per request path: error statuses, 429 with
Retry-After, delays, truncated bodies, a wrong sha256, bytes that do not decode.

    with FakeFathomNet(build_catalog(jpeg_paths)) as server:
        env = server.env()   # FATHOMNET_API_URL / FATHOMNET_WORMS_API_URL for the client
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

# Genus/species the catalogue uses; WoRMS-style tree with common names.
TAXA: dict[str, dict] = {
    "Pterois": {"rank": "Genus", "children": ["Pterois volitans", "Pterois miles", "Pterois antennata"],
                "alt": ["lionfish", "lionfishes"]},
    "Pterois volitans": {"rank": "Species", "children": [], "alt": ["red lionfish"]},
    "Pterois miles": {"rank": "Species", "children": [], "alt": ["devil firefish"]},
    "Pterois antennata": {"rank": "Species", "children": [], "alt": ["spotfin lionfish"]},
    "Strongylocentrotus purpuratus": {"rank": "Species", "children": [], "alt": ["purple sea urchin"]},
    "Haliotis": {"rank": "Genus", "children": ["Haliotis rufescens", "Haliotis corrugata"], "alt": ["abalone"]},
    "Haliotis rufescens": {"rank": "Species", "children": [], "alt": ["red abalone"]},
    "Haliotis corrugata": {"rank": "Species", "children": [], "alt": ["pink abalone"]},
    "Sebastes": {"rank": "Genus", "children": [], "alt": ["rockfish"]},
}
# Concepts images are labelled with (Pterois antennata has none; Sebastes is never asked for).
LEAF_CONCEPTS = ["Pterois volitans", "Strongylocentrotus purpuratus", "Haliotis rufescens", "Pterois miles",
                 "Haliotis corrugata", "Pterois"]
CONTRIBUTORS = ["mbari@example.org", "noaa@example.org", "oceana@example.org"]
NAMESPACE = uuidlib.UUID("5f1c7f5e-3d5a-4f55-9a77-1b2d3c4e5f60")


@dataclass
class CatalogImage:
    uuid: str
    path: Path
    width: int
    height: int
    sha256: str
    record: dict  # AImageDTO fields except url


def _yolo_boxes(label: Path, w: int, h: int) -> list[tuple[int, int, int, int]]:
    boxes = []
    if label.is_file():
        for line in label.read_text().splitlines():
            parts = line.split()
            if len(parts) == 5:
                _, cx, cy, bw, bh = map(float, parts)
                x, y = int((cx - bw / 2) * w), int((cy - bh / 2) * h)
                boxes.append((max(0, x), max(0, y), max(1, int(bw * w)), max(1, int(bh * h))))
    return boxes[:4] or [(w // 4, h // 4, w // 2, h // 2)]


def build_catalog(image_paths: list[Path]) -> list[CatalogImage]:
    """Deterministic FathomNet-like records over real JPEG files: concepts cycle over the leaves,
    every 5th image also has an unasked Sebastes box, eight consecutive images share a dive."""
    from PIL import Image

    out = []
    for i, path in enumerate(sorted(image_paths)):
        data = path.read_bytes()
        with Image.open(path) as im:
            w, h = im.size
        uid = str(uuidlib.uuid5(NAMESPACE, f"image-{i}"))
        concept = LEAF_CONCEPTS[i % len(LEAF_CONCEPTS)]
        label = path.parent.parent / "labels" / f"{path.stem}.txt"  # YOLO labels beside images/, if any
        boxes = [(concept, b) for b in _yolo_boxes(label, w, h)]
        if i % 5 == 0:
            boxes.append(("Sebastes", (0, 0, max(1, w // 8), max(1, h // 8))))
        dive = i // 8
        day = date(2019, 1, 1) + timedelta(days=dive)
        record = {
            "id": i + 1, "uuid": uid, "valid": True, "imagingType": "ROV" if dive % 2 else "Still camera",
            "depthMeters": float(10 + (dive * 37) % 900), "width": w, "height": h,
            "latitude": 36.0 + (dive % 7) * 0.1, "longitude": -122.0 - (dive % 5) * 0.1,
            "timestamp": f"{day.isoformat()}T{(i % 24):02d}:00:00Z", "mediaType": "image",
            "sha256": hashlib.sha256(data).hexdigest(), "contributorsEmail": CONTRIBUTORS[dive % 3],
            "tags": [], "createdTimestamp": "2020-01-01T00:00:00Z", "lastUpdatedTimestamp": "2020-01-01T00:00:00Z",
            "boundingBoxes": [
                {"id": i * 10 + k, "uuid": str(uuidlib.uuid5(NAMESPACE, f"box-{i}-{k}")), "concept": c,
                 "x": b[0], "y": b[1], "width": b[2], "height": b[3], "observer": "fake", "rejected": False,
                 "reviewState": "VERIFIED", "occluded": False, "truncated": False, "groupOf": False}
                for k, (c, b) in enumerate(boxes)
            ],
        }
        out.append(CatalogImage(uid, path, w, h, record["sha256"], record))
    return out


@dataclass
class Faults:
    """Per-path-regex fault rules; each rule fires `times` times (None = forever)."""

    latency: float = 0.0  # seconds added to every request
    rules: list[dict] = field(default_factory=list)
    wrong_sha: set[str] = field(default_factory=set)  # uuids whose advertised sha256 is wrong
    undecodable: set[str] = field(default_factory=set)  # uuids served as bytes that are no image
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, pattern: str, times: int | None = 1, **kw) -> None:
        with self._lock:
            self.rules.append({"kind": kind, "re": re.compile(pattern), "left": times, **kw})

    def take(self, path: str) -> list[dict]:
        fired = []
        with self._lock:
            for rule in self.rules:
                if rule["left"] != 0 and rule["re"].search(path):
                    if rule["left"] is not None:
                        rule["left"] -= 1
                    fired.append(rule)
        return fired


UNDECODABLE = b"\xff\xd8\xff\xe0" + b"this is not image data " * 40


class FakeFathomNet:
    def __init__(self, catalog: list[CatalogImage], host: str = "127.0.0.1"):
        self.catalog = catalog
        self.by_uuid = {c.uuid: c for c in catalog}
        self.faults = Faults()
        self.log: list[tuple[str, str, int]] = []
        self._log_lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- life cycle ------------------------------------------------------------------------
    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api"

    @property
    def worms_url(self) -> str:
        return f"{self.base}/worms"

    def env(self) -> dict[str, str]:
        return {"FATHOMNET_API_URL": self.api_url, "FATHOMNET_WORMS_API_URL": self.worms_url}

    def __enter__(self) -> FakeFathomNet:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def image_requests(self) -> list[str]:
        with self._log_lock:
            return [p for m, p, s in self.log if p.startswith("/static/") and s == 200]

    def record(self, method: str, path: str, status: int) -> None:
        with self._log_lock:
            self.log.append((method, path, status))

    # -- data ------------------------------------------------------------------------------
    def dto(self, c: CatalogImage) -> dict:
        rec = dict(c.record)
        rec["url"] = f"{self.base}/static/images/{c.uuid}.jpg"
        if c.uuid in self.faults.wrong_sha:
            rec["sha256"] = "0" * 64
        if c.uuid in self.faults.undecodable:
            rec["sha256"] = hashlib.sha256(UNDECODABLE).hexdigest()
        return rec

    def concepts(self) -> list[str]:
        return sorted({b["concept"] for c in self.catalog for b in c.record["boundingBoxes"]})

    def query(self, constraints: dict) -> list[dict]:
        concept = constraints.get("concept")
        out = []
        for c in self.catalog:
            r = c.record
            if concept and not any(b["concept"] == concept for b in r["boundingBoxes"]):
                continue
            if not _in_range(r["depthMeters"], constraints.get("minDepth"), constraints.get("maxDepth")):
                continue
            if not _in_range(r["latitude"], constraints.get("minLatitude"), constraints.get("maxLatitude")):
                continue
            if not _in_range(r["longitude"], constraints.get("minLongitude"), constraints.get("maxLongitude")):
                continue
            ts = r["timestamp"][:19]
            if constraints.get("startTimestamp") and ts < constraints["startTimestamp"][:19]:
                continue
            if constraints.get("endTimestamp") and ts >= constraints["endTimestamp"][:19]:
                continue
            out.append(self.dto(c))
        offset = constraints.get("offset") or 0
        limit = constraints.get("limit")
        return out[offset: offset + limit if limit else None]


def _in_range(v, lo, hi) -> bool:
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _taxon(name: str) -> str | None:
    low = name.lower()
    for k, v in TAXA.items():
        if k.lower() == low or low in (a.lower() for a in v["alt"]):
            return k
    return None


def _descendants(name: str) -> list[str]:
    out = [name]
    for child in TAXA.get(name, {}).get("children", []):
        out += _descendants(child)
    return out


def _node(name: str, with_children: bool = False) -> dict:
    t = TAXA[name]
    node = {"name": name, "rank": t["rank"], "aphiaId": abs(hash(name)) % 10**6, "alternateNames": t["alt"]}
    if with_children:
        node["children"] = [_node(c, True) for c in t["children"]]
    return node


def _handler(server: FakeFathomNet):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # As production servers do (nginx's tcp_nodelay is on by default): with Nagle on, the tail of
        # each body waits for the client's delayed ACK (~40 ms) on a reused keep-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json", headers=None,
                  truncate: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if truncate:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
            else:
                self.wfile.write(body)
            server.record(self.command, self.path, status)

        def _json(self, obj, status: int = 200) -> None:
            self._send(status, json.dumps(obj).encode())

        def _handle(self) -> None:
            path = re.sub(r"/{2,}", "/", urlparse(self.path).path)
            query = parse_qs(urlparse(self.path).query)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if server.faults.latency:
                time.sleep(server.faults.latency)
            truncate = False
            for rule in server.faults.take(path):
                if rule["kind"] == "status":
                    headers = {"Retry-After": str(rule["retry_after"])} if rule.get("retry_after") is not None else {}
                    return self._send(rule["status"], b'{"message": "injected"}', headers=headers)
                if rule["kind"] == "delay":
                    time.sleep(rule["seconds"])
                if rule["kind"] == "truncate":
                    truncate = True
                if rule["kind"] == "redirect" and "redirected" not in query:  # as a CDN does: elsewhere, once
                    return self._send(302, b"", headers={"Location": f"{path}?redirected=1"})
            return self._route(unquote(path), query, body, truncate)

        do_GET = do_POST = _handle

        def _route(self, path: str, query: dict, body: bytes, truncate: bool) -> None:
            m = re.fullmatch(r"/static/images/([0-9a-f-]+)\.jpg", path)
            if m:
                c = server.by_uuid.get(m.group(1))
                if c is None:
                    return self._json({"message": "not found"}, 404)
                data = UNDECODABLE if c.uuid in server.faults.undecodable else c.path.read_bytes()
                return self._send(200, data, "image/jpeg", truncate=truncate)
            if path == "/api/images/query" and self.command == "POST":
                return self._json(server.query(json.loads(body or b"{}")))
            m = re.fullmatch(r"/api/images/query/concept/(.+)", path)
            if m:
                return self._json(server.query({"concept": m.group(1)}))
            if path == "/api/boundingboxes/list/concepts":
                return self._json(server.concepts())
            m = re.fullmatch(r"/api/boundingboxes/query/count/(.+)", path)
            if m:
                n = sum(b["concept"] == m.group(1) for c in server.catalog for b in c.record["boundingBoxes"])
                return self._json({"concept": m.group(1), "count": n})
            if path == "/api/images/list/imagingtypes":
                return self._json(sorted({c.record["imagingType"] for c in server.catalog}))
            if path == "/api/images/list/contributors":
                return self._json(CONTRIBUTORS)
            if path == "/api/taxa/list/providers":
                return self._json(["fathomnet", "WoRMS"])
            if path == "/api/darwincore/list/ownerinstitutions":
                return self._json(["MBARI"])
            m = re.fullmatch(r"/api/taxa/query/([^/]+)/(.+)", path)
            if m:
                name = _taxon(m.group(2))
                return self._json([{"name": n, "rank": TAXA[n]["rank"]} for n in _descendants(name)] if name else [])
            m = re.fullmatch(r"/worms/(descendants|children|ancestors|parent|synonyms)/(.+)", path)
            if m:
                name = _taxon(m.group(2))
                if name is None:
                    return self._json({"message": f"{m.group(2)} not found"}, 404)
                if m.group(1) == "descendants":
                    return self._json(_descendants(name))
                if m.group(1) == "children":
                    return self._json(TAXA[name]["children"])
                return self._json([])
            m = re.fullmatch(r"/worms/taxa/info/(.+)", path)
            if m:
                name = _taxon(m.group(1))
                return self._json(_node(name)) if name else self._json({"message": "not found"}, 404)
            m = re.fullmatch(r"/worms/query/(contains|startswith)/(.+)", path)
            if m:
                frag = m.group(2).lower()
                names = sorted({n for k, v in TAXA.items() for n in [k, *v["alt"]]})
                hit = [n for n in names if (frag in n.lower() if m.group(1) == "contains" else n.lower().startswith(frag))]
                return self._json(hit)
            if path == "/worms/names/count":
                return self._json(len(TAXA))
            return self._json({"message": f"no route {path}"}, 404)

    return Handler


def jpeg_sources(shared_data: Path | None, fallback_dir: Path | None, n: int) -> list[Path]:
    """Up to n real JPEG paths: ../shared/data first (labelled sets first), else a fallback folder."""
    folders = []
    if shared_data is not None:
        folders += [shared_data / sub / "images" for sub in ("underwater-det", "deepfish-det", "underwater-unlabelled")]
    if fallback_dir is not None:
        folders.append(fallback_dir)
    paths: list[Path] = []
    for d in folders:
        if d.is_dir():
            paths += sorted(d.glob("*.jpg"))[: n - len(paths)]
        if len(paths) >= n:
            break
    return paths

"""Uploaded bytes -> BGR image, refusing anything that is not a complete, reasonably sized picture.

Order matters: the declared content type and the magic bytes are checked first, then the pixel
count read from the header (Pillow parses headers lazily, nothing is decoded), so a small file that
claims 100k x 100k pixels (a decompression bomb) is refused before any memory is allocated. Only then
does OpenCV decode it, exactly as the edge runtime's `cv2.imread` would.
"""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

import cv2
import numpy as np

# declared content type -> the format its bytes must have
CONTENT_TYPES = {"image/jpeg": "JPEG", "image/pjpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP",
                 "image/bmp": "BMP", "image/x-ms-bmp": "BMP"}
GENERIC_TYPES = {"application/octet-stream", ""}  # multipart parts from clients that do not label them
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"))


class ImageRejected(Exception):
    """An upload the service refuses; `status` is the HTTP status, `reason` a metrics label."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def sniff(data: bytes) -> str | None:
    """The image format from the magic bytes, or None."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_content_type(content_type: str | None, allow_generic: bool = False) -> None:
    kind = media_type(content_type)
    if kind in CONTENT_TYPES or (allow_generic and kind in GENERIC_TYPES):
        return
    raise ImageRejected(415, "unsupported_media_type",
                        f"unsupported content type '{kind or 'none'}': send {', '.join(sorted(set(CONTENT_TYPES)))}")


def header_size(data: bytes, fmt: str) -> tuple[int, int]:
    """(width, height) from the header only."""
    if fmt == "PNG" and len(data) >= 24 and data[12:16] == b"IHDR":  # fixed place: no parser needed
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError:
        return (1 << 31) - 1, (1 << 31) - 1  # Pillow's own bomb check: certainly over our limit
    except Exception:  # Pillow raises many types for broken headers
        raise ImageRejected(400, "bad_image", f"not a valid {fmt} image: the header cannot be read") from None


def _jpeg_complete(data: bytes) -> bool:
    """A JPEG whose scan data is followed by the end-of-image marker (a cut-off upload is not)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data runs to EOI (stuffed, so FFD9 is real)
            return data.find(b"\xff\xd9", i + 2) != -1
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return False


def _complete(data: bytes, fmt: str) -> bool:
    if fmt == "JPEG":
        return _jpeg_complete(data)
    if fmt == "PNG":
        return data.rfind(b"IEND") != -1
    return True


class Upload(NamedTuple):
    """An upload whose type, header size and completeness were checked; nothing is decoded yet."""

    data: bytes
    fmt: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def check_image(data: bytes, content_type: str | None, max_pixels: int, allow_generic: bool = False) -> Upload:
    """Checks everything that does not need decoding: ImageRejected (415 type, 413 too many pixels, 400 broken)."""
    check_content_type(content_type, allow_generic)
    if not data:
        raise ImageRejected(400, "empty", "empty image")
    fmt = sniff(data)
    declared = CONTENT_TYPES.get(media_type(content_type))
    if fmt is None:
        raise ImageRejected(415, "unsupported_media_type", "the content is not a JPEG, PNG, WebP or BMP image")
    if declared is not None and declared != fmt:
        raise ImageRejected(415, "unsupported_media_type",
                            f"content type says {declared} but the content is {fmt}")
    width, height = header_size(data, fmt)
    if width <= 0 or height <= 0:
        raise ImageRejected(400, "bad_image", f"{fmt} header has an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(413, "too_many_pixels", f"image is {width}x{height} = {width * height} pixels; "
                            f"the limit is {max_pixels} (serve.max_pixels)")
    if not _complete(data, fmt):
        raise ImageRejected(400, "bad_image", f"{fmt} image is truncated (no end marker)")
    return Upload(data, fmt, width, height)


def decode_upload(upload: Upload) -> np.ndarray:
    """A checked upload -> BGR uint8 (H, W, 3); never more pixels than its header declared (that is
    what the pixel budget reserved)."""
    image = cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageRejected(400, "bad_image", f"{upload.fmt} image cannot be decoded (corrupt or truncated)")
    if image.shape[0] * image.shape[1] > upload.pixels:  # headers that lied
        raise ImageRejected(400, "bad_image", f"decoded {upload.fmt} image is {image.shape[1]}x{image.shape[0]}, "
                            f"not the {upload.width}x{upload.height} its header declares")
    return image


def decode_image(data: bytes, content_type: str | None, max_pixels: int, allow_generic: bool = False) -> np.ndarray:
    """Checked bytes -> BGR uint8 (H, W, 3): check_image, then decode_upload."""
    return decode_upload(check_image(data, content_type, max_pixels, allow_generic))

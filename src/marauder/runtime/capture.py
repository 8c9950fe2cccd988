"""Frame sources for the capture loop: camera index, RTSP/HTTP stream, video file, image folder.

Live sources (cameras, streams) are read by a background thread that keeps only the newest frame,
so a slow pipeline skips frames instead of queueing them. A video file plays in real time by
default (frames whose time has passed are skipped, as a camera would); a folder yields its images
in name order. `read()` returns (frame, info) or (None, reason) with reason 'end' or 'disconnected'.
"""

from __future__ import annotations

import os
import threading
import time

import cv2

from .errors import SourceError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://", "gst:")


def describe(source) -> str:
    s = str(source)
    if s.isdigit():
        return "camera"
    if s.startswith(STREAM_PREFIXES):
        return "stream"
    if os.path.isdir(s):
        return "folder"
    if os.path.isfile(s):
        return "video"
    raise SourceError(f"{source}: not a camera index, stream URL, folder or video file")


class FolderSource:
    live = False

    def __init__(self, folder):
        self.name = str(folder)
        self.files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                            if f.lower().endswith(IMAGE_SUFFIXES))
        if not self.files:
            raise SourceError("{}: no images ({})".format(folder, ", ".join(IMAGE_SUFFIXES)))
        self.index = 0
        self.skipped = 0

    def open(self):
        return True

    def read(self, elapsed_s: float):
        while self.index < len(self.files):
            path = self.files[self.index]
            self.index += 1
            frame = cv2.imread(path)
            if frame is not None:
                return frame, {"source_index": self.index - 1, "file": os.path.basename(path)}
            self.skipped += 1  # unreadable image: skip it, keep going
        return None, "end"

    def close(self):
        pass


class VideoFileSource:
    """A video file, played in real time (skipping late frames) or frame by frame."""

    live = False

    def __init__(self, path, realtime: bool = True):
        self.name = str(path)
        self.realtime = realtime
        self.cap = None
        self.position = 0  # index of the next frame to decode
        self.skipped = 0

    def open(self):
        self.cap = cv2.VideoCapture(self.name)
        if not self.cap.isOpened():
            raise SourceError(f"{self.name}: OpenCV cannot open this video")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        return True

    def read(self, elapsed_s: float):
        if self.realtime:
            due = int(elapsed_s * self.fps)  # the frame a camera would be showing now
            while self.position < due:
                if not self.cap.grab():
                    return None, "end"
                self.position += 1
                self.skipped += 1
        ok, frame = self.cap.read()
        if not ok:
            return None, "end"
        self.position += 1
        return frame, {"source_index": self.position - 1, "video_time_s": round((self.position - 1) / self.fps, 3)}

    def close(self):
        if self.cap is not None:
            self.cap.release()


class LiveSource:
    """Camera or stream: a grabber thread keeps the newest frame only; EOF/read failure = disconnected."""

    live = True

    def __init__(self, target, pace_fps=None, opener=None):
        self.name = str(target)
        self.target = int(target) if str(target).isdigit() else str(target)
        self.pace = 1.0 / pace_fps if pace_fps else 0.0  # files standing in for a camera
        self.opener = opener or cv2.VideoCapture
        self.cap = None
        self.thread = None
        self.lock = threading.Lock()
        self.latest = None
        self.seq = 0
        self.last_read_seq = 0
        self.alive = False
        self.skipped = 0

    def open(self):
        self.close()
        cap = self.opener(self.target)
        if cap is None or not cap.isOpened():
            return False
        self.cap = cap
        self.alive = True
        self.thread = threading.Thread(target=self._grab, name="marauder-edge-grabber", daemon=True)
        self.thread.start()
        return True

    def _grab(self):
        while self.alive:
            ok, frame = self.cap.read()
            if not ok:
                self.alive = False
                break
            with self.lock:
                self.latest = frame
                self.seq += 1
            if self.pace:
                time.sleep(self.pace)

    def read(self, elapsed_s: float, wait_s: float = 2.0):
        deadline = time.monotonic() + wait_s
        while True:
            with self.lock:
                if self.seq > self.last_read_seq:
                    self.skipped += self.seq - self.last_read_seq - 1
                    self.last_read_seq = self.seq
                    return self.latest, {"source_index": self.seq - 1}
            if not self.alive or time.monotonic() > deadline:
                return None, "disconnected"
            time.sleep(0.002)

    def close(self):
        self.alive = False
        if self.thread is not None:
            self.thread.join(timeout=2.0)
            self.thread = None
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        with self.lock:
            self.seq = self.last_read_seq = 0


def open_source(source, realtime: bool = True, live=None, opener=None):
    """A source object for a camera index, stream URL, folder or video file.

    `live=True` treats a video file like a camera (end of file = disconnect, then reconnect), which
    is how the tests exercise reconnection without a real camera.
    """
    kind = describe(source)
    if kind == "folder":
        return FolderSource(source)
    if kind == "video" and not live:
        return VideoFileSource(source, realtime=realtime)
    pace = None
    if kind == "video":
        probe = cv2.VideoCapture(str(source))
        pace = probe.get(cv2.CAP_PROP_FPS) or 30.0
        probe.release()
    return LiveSource(source, pace_fps=pace, opener=opener)

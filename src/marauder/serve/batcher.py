"""Micro-batching: images that arrive together go through the runtime in one `predict` call.

One worker task takes the first waiting image, waits up to `window_s` for more (at most `max_batch`),
and runs the batch on a single inference thread so the event loop keeps accepting requests. While a
batch runs, new arrivals queue up and form the next batch, so batching grows with load by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("marauder.serve")


class Overloaded(Exception):
    """More images are waiting than serve.max_queue allows."""


class MicroBatcher:
    def __init__(self, predict, max_batch: int, window_s: float, max_queue: int, observe=None):
        self._predict = predict
        self.max_batch, self.window_s, self.max_queue = int(max_batch), float(window_s), int(max_queue)
        self._observe = observe or (lambda size, seconds: None)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        while self._queue is not None and not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(Overloaded("the service is shutting down"))

    async def submit(self, image):
        """The runtime's detections for one image (raises Overloaded when the queue is full)."""
        if not self.running:
            raise Overloaded("the model is not running")
        if self._queue.qsize() >= self.max_queue:
            raise Overloaded(f"{self._queue.qsize()} images are waiting (serve.max_queue)")
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((image, fut))
        return await fut

    async def _collect(self) -> list:
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return [(image, fut) for image, fut in batch if not fut.done()]  # drop cancelled requests

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            images = [image for image, _ in batch]
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._predict, images)
            except Exception as exc:  # the requests get a 500; the worker keeps serving
                log.exception("inference failed on a batch of %d", len(images))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self._observe(len(images), time.perf_counter() - start)
            for (_, fut), result in zip(batch, results):
                if not fut.done():
                    fut.set_result(result)

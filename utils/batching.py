"""Micro-batching for a server: jobs that arrive within a few milliseconds of each other run as one call, on one
worker thread, off the event loop.

    batcher = MicroBatcher(run_batch, max_batch=1024, max_wait=0.002, max_queue=4096)
    await batcher.start()
    result = await batcher.submit(job, size=len(job.names))   # Overloaded when the queue is full
    await batcher.stop()

`run_batch(jobs) -> results` (same order) runs on the worker thread; one call for 256 names costs far less
than 256 calls for one (about a tenth, for the default model on one CPU thread), so gathering pays. A batch
closes when it holds `max_batch` units (names) or its oldest job has waited `max_wait` seconds; jobs that
arrived while the previous batch ran have usually waited that long already, so under load batches form with no
added wait. A job larger than `max_batch` runs alone. `max_batch=1` turns batching off: every job is its own
call. At most `max_queue` units wait at once; past that `submit` raises Overloaded at once instead of queueing
work that would time out.
"""
import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


class Overloaded(Exception):
    """The queue is full: try again shortly."""


@dataclass
class BatchStats:
    batches: int = 0  # calls of run_batch
    jobs: int = 0  # jobs those calls ran
    units: int = 0  # names those calls ran
    rejected: int = 0  # jobs refused with Overloaded
    busy_seconds: float = 0.0  # time spent inside run_batch


class MicroBatcher:
    def __init__(self, run_batch, max_batch: int = 1024, max_wait: float = 0.002, max_queue: int = 4096):
        if max_batch < 1 or max_wait < 0 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1, max_wait at least 0")
        self.run_batch, self.max_batch, self.max_wait, self.max_queue = run_batch, max_batch, max_wait, max_queue
        self.stats = BatchStats()
        self._pending: deque = deque()  # (job, size, future, arrival time)
        self._queued = 0  # units waiting
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task = asyncio.create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish the batch in flight, fail what still waits, and release the worker thread."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._pending:
            _, _, future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(Overloaded("the server is shutting down"))
        self._queued = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, job, size: int = 1):
        """Queue `job` (`size` units) and wait for its result; Overloaded at once if the queue is full."""
        if not self.running:
            raise Overloaded("the model is not running")
        if self._queued + size > self.max_queue and self._queued > 0:  # a lone job larger than the queue still runs
            self.stats.rejected += 1
            raise Overloaded(f"{self._queued} names are waiting")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((job, size, future, time.monotonic()))
        self._queued += size
        self._wakeup.set()
        return await future

    def _take(self) -> list:
        """Pop the next batch: jobs in arrival order up to max_batch units (at least one job); abandoned ones dropped."""
        batch, units = [], 0
        while self._pending:
            job, size, future, _ = self._pending[0]
            if future.done():  # the client went away (its handler was cancelled)
                self._pending.popleft()
                self._queued -= size
                continue
            if batch and units + size > self.max_batch:
                break
            self._pending.popleft()
            self._queued -= size
            batch.append((job, size, future))
            units += size
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            if not self._pending:
                self._wakeup.clear()
                continue
            # wait for more until the batch is full or its oldest job has waited max_wait
            deadline = self._pending[0][3] + self.max_wait
            while self._queued < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), left)
                except TimeoutError:
                    break
            batch = self._take()
            if not self._pending:
                self._wakeup.clear()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [job for job, _, _ in batch])
            except asyncio.CancelledError:  # stop() while a batch ran: its callers must not wait forever
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(Overloaded("the server is shutting down"))
                raise
            except Exception as e:  # the batch's failure is each of its jobs' failure; the loop goes on
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            finally:
                self.stats.batches += 1
                self.stats.jobs += len(batch)
                self.stats.units += sum(size for _, size, _ in batch)
                self.stats.busy_seconds += time.perf_counter() - started
            for (_, _, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

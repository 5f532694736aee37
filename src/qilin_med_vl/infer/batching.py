"""A batching queue in front of the Engine: concurrent requests are gathered for a few milliseconds
and answered by one `Engine.generate_batch` call on a single worker thread.

If a batch fails (one request the engine refuses), each of its requests is retried alone, so one bad
request never fails its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from qilin_med_vl.infer.defaults import DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_BATCH_SIZE
from qilin_med_vl.infer.engine import Engine, GenerationRequest, TextCallback

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    request: GenerationRequest
    on_text: TextCallback | None
    future: Future


class BatchingWorker:
    def __init__(
        self,
        engine: Engine,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        wait_s: float = DEFAULT_BATCH_WAIT_S,
    ):
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="qilin-batching", daemon=True)
        self.batch_sizes: list[int] = []  # one entry per generate_batch call, for logs and tests

    def start(self) -> BatchingWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def submit(self, request: GenerationRequest, on_text: TextCallback | None = None) -> Future:
        """Queue a request; the future resolves to its `Completion`. `on_text(0, text)` streams it."""
        future: Future = Future()
        self._jobs.put(_Job(request, on_text, future))
        return future

    def _loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self.max_batch_size:
                try:
                    job = self._jobs.get(timeout=self.wait_s)
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._run(batch)
            if stopping:
                return

    def _run(self, batch: list[_Job]) -> None:
        streamed = []

        def dispatch(index: int, text: str) -> None:
            streamed.append(index)
            callback = batch[index].on_text
            if callback is not None:
                callback(0, text)

        streaming = any(job.on_text is not None for job in batch)
        try:
            self.batch_sizes.append(len(batch))
            completions = self.engine.generate_batch(
                [job.request for job in batch], on_text=dispatch if streaming else None
            )
        except Exception as error:
            if len(batch) == 1 or streamed:  # a retry would repeat text already sent
                for job in batch:
                    job.future.set_exception(error)
                return
            logger.info(
                "a batch of %d failed (%s); answering its requests one by one",
                len(batch),
                type(error).__name__,
            )
            for job in batch:
                self._run([job])
            return
        for job, completion in zip(batch, completions, strict=True):
            job.future.set_result(completion)

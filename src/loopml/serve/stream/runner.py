"""`loopml stream run`: the learner process between the queue, the model and the registry.

One loop: consume a batch of events (a :class:`MessageBatch`, one queue read) -> predict
on arrival, learn when labels are due -> answer prediction requests with the current
model -> every ``commit_every`` events (or ``commit_seconds``) write a checkpoint and only
then ack everything applied since, in one call -> every ``snapshot_every`` events (or
``snapshot_seconds``) register a snapshot and announce it on the model updates topic
(the checkpoint taken with it reuses the snapshot's model bytes). A bad event goes to
``<events_topic>.dead`` with the reason and the loop goes on; SIGKILL at any instant
loses nothing (see :mod:`.checkpoint`).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.core.processes import freeze_long_lived
from loopml.serve.stream.checkpoint import Checkpoint, CheckpointStore
from loopml.serve.stream.learner import OnlineLearner
from loopml.serve.stream.settings import StreamSettings
from loopml.storage.queues.base import MessageBatch, ReadAhead

if TYPE_CHECKING:
    from loopml.core.config import ProjectConfig
    from loopml.storage.queues.base import Message, Queue


@dataclass
class RunReport:
    """What one run did (the learner's lifetime totals are in ``status``)."""

    consumed: int = 0
    applied: int = 0
    recovered: int = 0
    dead_lettered: int = 0
    predictions: int = 0
    commits: int = 0
    snapshots: list[int] = field(default_factory=list)
    seconds: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.consumed / self.seconds if self.seconds else 0.0


class StreamRunner:
    """The learner process: owns a queue, a checkpoint store and (optionally) a registry."""

    def __init__(
        self,
        queue: Queue,
        checkpoints: CheckpointStore,
        settings: StreamSettings,
        registry: Any = None,
        warm_start: tuple[Any, int] | None = None,
        consumer: str | None = None,
    ) -> None:
        self.queue = queue
        self.checkpoints = checkpoints
        self.settings = settings
        self.registry = registry
        self.consumer = consumer or settings.name
        self.state = checkpoints.load()
        if self.state is None:
            parent = None
            if warm_start is not None:
                learner, parent = warm_start
            else:
                learner = OnlineLearner(
                    settings.model,
                    label_window_s=settings.label_window_s,
                    mini_batch=settings.mini_batch,
                    model_params=dict(settings.model_params),
                )
            self.state = Checkpoint(learner, parent_version=parent, settings=settings.to_dict())
        self.report = RunReport()
        self._unacked: list[MessageBatch] = []  # applied, checkpoint pending, not acked
        self._request_read: ReadAhead | None = None  # a request check in flight (Redis)
        self._n_unacked = 0
        self._last_commit = time.monotonic()
        self._last_snapshot = time.monotonic()

    @property
    def learner(self) -> OnlineLearner:
        return self.state.learner

    # -- the loop ----------------------------------------------------------------------
    def run(
        self,
        max_events: int | None = None,
        idle_timeout_s: float | None = None,
        block_ms: int = 200,
        progress: bool = False,
    ) -> RunReport:
        """Consume until ``max_events`` messages or ``idle_timeout_s`` without any.

        Both None means run until interrupted (Ctrl-C commits before exiting).
        """
        start = time.monotonic()
        bar = _Progress(progress, max_events)
        frozen = freeze_long_lived(collect=False)
        reads = _Reads(self, block_ms, max_events)
        try:
            self._recover()
            idle_since = time.monotonic()
            while max_events is None or self.report.consumed < max_events:
                msgs = reads.next()
                served = self.answer_requests()
                # the next reads start only now: Redis runs one command at a time, so a
                # read in flight would hold up the request check above
                reads.ahead()
                self._requests_ahead()
                if msgs:
                    self._apply(msgs)
                    bar.advance(len(msgs), self.learner)
                    idle_since = time.monotonic()
                elif (
                    not served
                    and idle_timeout_s is not None
                    and time.monotonic() - idle_since >= idle_timeout_s
                ):
                    break
                self._maybe_commit()
            # a batch read ahead is delivered to this consumer: apply it before stopping
            for msgs in reads.drain():
                self._apply(msgs)
        except KeyboardInterrupt:
            pass  # a batch read ahead stays pending in the queue; the next run recovers it
        finally:
            reads.close()
            try:
                self.commit(snapshot=self.registry is not None and self._learnt_since_snapshot > 0)
                self._drain_requests()
            finally:
                if self._request_read is not None:  # the commit failed: drop the check
                    self._request_read.cancel()
                    self._request_read = None
                bar.close()
                if frozen:
                    gc.unfreeze()
        self.report.seconds = time.monotonic() - start
        self.report.status = self.learner.status()
        return self.report

    def _recover(self) -> None:
        s = self.settings
        back = self.queue.recover(s.events_topic, s.consumer_group, self.consumer)
        if back:
            self.report.recovered += len(back)
            self._apply(MessageBatch.from_messages(back), count_consumed=False)

    def _apply(self, msgs: MessageBatch | list[Message], count_consumed: bool = True) -> None:
        """Apply one delivered batch; it is acked at the next commit (after the checkpoint)."""
        if not isinstance(msgs, MessageBatch):
            msgs = MessageBatch.from_messages(msgs, self.settings.events_topic)
        applied = self.learner.process_messages(msgs, on_error=self._dead_letter)
        self.report.applied += applied
        if count_consumed:
            self.report.consumed += len(msgs)
        self._unacked.append(msgs.receipt())  # the events themselves can go
        self._n_unacked += len(msgs)

    def _dead_letter(self, message: Message, error: Exception) -> None:
        self.queue.publish(
            f"{self.settings.events_topic}.dead",
            {
                "payload": message.payload,
                "error": str(error),
                "field": getattr(error, "fields", {}).get("field"),
                "message_id": message.id,
                "learner": self.settings.name,
            },
        )
        self.report.dead_lettered += 1

    # -- prediction requests -----------------------------------------------------------
    def answer_requests(self, limit: int = 500) -> int:
        """Score waiting prediction requests with the current model; return how many.

        On Redis the check was sent with the previous batch's read ahead
        (:meth:`_requests_ahead`), so it costs no round trip of its own here.
        """
        s = self.settings
        ahead, self._request_read = self._request_read, None
        if ahead is not None:
            reqs = ahead.result().messages()
        else:
            reqs = self.queue.consume(
                s.requests_topic, s.consumer_group, self.consumer, count=limit
            )
        if not reqs:
            return 0
        out = []
        for m in reqs:
            req = m.payload
            try:
                score: float | None = self.learner.predict_one(self.learner.features_for(req))
                error = None
            except Exception as exc:  # a bad request gets an answer, never a dead learner
                score, error = None, f"{type(exc).__name__}: {exc}"
            out.append(
                {
                    "request_id": req.get("request_id", m.id),
                    "score": score,
                    "error": error,
                    "model": s.name,
                    "version": self.state.parent_version,
                    "learnt": self.learner.n_learnt,
                    "ts": time.time(),
                }
            )
        self.queue.publish_many(s.predictions_topic, out, [m.key for m in reqs])
        self.queue.ack(s.requests_topic, s.consumer_group, reqs)
        self.report.predictions += len(reqs)
        return len(reqs)

    def _requests_ahead(self, limit: int = 500) -> None:
        """Send the next request check now, next to the events read ahead (Redis; an
        embedded queue checks when asked)."""
        if self._request_read is None:
            s = self.settings
            self._request_read = self.queue.read_ahead(
                s.requests_topic, s.consumer_group, self.consumer, count=limit
            )

    def _drain_requests(self) -> None:
        """Answer the requests of a check in flight before stopping (dropped, they would
        stay pending for this consumer with nobody to answer them)."""
        if self._request_read is None:
            return
        try:
            self.answer_requests()
        finally:
            if self._request_read is not None:
                self._request_read.cancel()
                self._request_read = None

    # -- commits and snapshots -----------------------------------------------------------
    @property
    def _learnt_since_snapshot(self) -> int:
        return self.learner.n_learnt - self.state.learnt_at_snapshot

    def _maybe_commit(self) -> None:
        s = self.settings
        now = time.monotonic()
        due_snapshot = (
            self.registry is not None
            and self._learnt_since_snapshot > 0
            and (
                self._learnt_since_snapshot >= s.snapshot_every
                or now - self._last_snapshot >= s.snapshot_seconds
            )
        )
        if due_snapshot:
            self.commit(snapshot=True)
        elif self._n_unacked and (
            self._n_unacked >= s.commit_every or now - self._last_commit >= s.commit_seconds
        ):
            self.commit()

    def commit(self, snapshot: bool = False) -> None:
        """Optionally snapshot, then checkpoint, then ack: the order that loses nothing."""
        artifact = None
        if snapshot and self.registry is not None:
            artifact = self._snapshot()
        if not self._n_unacked and not snapshot:
            return
        self.checkpoints.save(self.state, model_artifact=artifact)
        if self._n_unacked:
            done = MessageBatch.concat(self._unacked)
            self.queue.ack(self.settings.events_topic, self.settings.consumer_group, done)
        self._unacked, self._n_unacked = [], 0
        self._last_commit = time.monotonic()
        self.report.commits += 1

    def snapshot(self) -> int:
        """Register the current model as a new version and announce it; return its number."""
        self._snapshot()
        return self.state.parent_version  # type: ignore[return-value]

    def _snapshot(self) -> bytes:
        """:meth:`snapshot`; returns the registered artifact (the checkpoint reuses it)."""
        from loopml.predict.river import save_model
        from loopml.serve.stream.snapshots import learner_signature, publish_snapshot

        s = self.settings
        artifact = save_model(self.learner.model_, learner_signature(self.learner))
        mv = publish_snapshot(
            self.registry, s.name, self.learner, self.state.parent_version, artifact=artifact
        )
        if s.snapshot_alias:  # an online server watching this alias hot-reloads the model
            self.registry.set_alias(
                s.name, s.snapshot_alias, mv.version, actor="stream-learner", reason="snapshot"
            )
        self.state.parent_version = mv.version
        self.state.snapshots += 1
        self.state.learnt_at_snapshot = self.learner.n_learnt
        self._last_snapshot = time.monotonic()
        self.report.snapshots.append(mv.version)
        self.queue.publish(
            s.updates_topic,
            {
                "model": s.name,
                "version": mv.version,
                "flavour": "river",
                "metrics": mv.metrics,
                "stream_position": mv.lineage.get("stream_position"),
                "parent_version": mv.lineage.get("parent_version"),
            },
            key=s.name,
        )
        return artifact


class _Progress:
    """A rich progress line for `loopml stream run` (silent when disabled)."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._bar = None
        if enabled:
            from rich.progress import Progress

            self._bar = Progress(transient=False)
            self._bar.start()
            self._task = self._bar.add_task("learning", total=total)

    def advance(self, n: int, learner: OnlineLearner) -> None:
        if self._bar is not None:
            m = learner.metrics_.summary()
            self._bar.update(
                self._task,
                advance=n,
                description=f"learnt {learner.n_learnt:,}  logloss {m['rolling_log_loss']:.4f}",
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def open_runner(
    cfg: ProjectConfig,
    settings: StreamSettings | None = None,
    warm_start: int | str | None = None,
    with_registry: bool = True,
    consumer: str | None = None,
) -> StreamRunner:
    """A runner on the project's queue, artifact store and registry.

    ``warm_start`` names a registry version of ``settings.name`` (number or alias), e.g.
    the batch layer's model, that a learner with no checkpoint yet continues from; it
    skips events at or before that model's horizon.
    """
    from loopml.storage.queues import open_queue

    settings = settings or StreamSettings.from_config(cfg)
    queue = open_queue(cfg.url("queue"), namespace=cfg.name)
    checkpoints = CheckpointStore(cfg.path("artifacts"), settings.name)
    registry = None
    start = None
    if with_registry or warm_start is not None:
        from loopml.registry.registry import Registry

        registry = Registry.from_config(cfg)
        if warm_start is not None and checkpoints.load() is None:
            from loopml.predict.flavours import load_model
            from loopml.serve.stream.layers import warm_start_state

            mv, data = registry.fetch(settings.name, warm_start)
            model = load_model(data, mv.flavour, sha256=mv.sha256)
            start = (warm_start_state(cfg, mv, model, settings), mv.version)
    return StreamRunner(
        queue, checkpoints, settings, registry if with_registry else None, start, consumer
    )


def run_learner(
    cfg: ProjectConfig,
    max_events: int | None = None,
    idle_timeout_s: float | None = None,
    warm_start: int | str | None = None,
    progress: bool = False,
    snapshots: bool = True,
    **overrides: Any,
) -> RunReport:
    """Run the project's streaming learner (`loopml stream run`); see :class:`StreamRunner`.

    ``overrides`` replace ``[stream]`` settings (``name``, ``model``, ``label_window_s``,
    ``mini_batch``, ``commit_every``, ``snapshot_every``, ...).
    """
    settings = StreamSettings.from_config(cfg, **overrides)
    runner = open_runner(cfg, settings, warm_start=warm_start, with_registry=snapshots)
    try:
        return runner.run(max_events=max_events, idle_timeout_s=idle_timeout_s, progress=progress)
    finally:
        runner.queue.close()


class _Reads:
    """The runner's event reads; on a queue that can (Redis), one batch is read ahead.

    The next read is sent before the learner works on the current batch, so the Redis
    server prepares it on the other core (~3.5 us per message) instead of the learner
    idling through the round trip. Never more than ``max_events`` are read in all.
    """

    def __init__(self, runner: StreamRunner, block_ms: int, max_events: int | None) -> None:
        self.runner = runner
        self.block_ms = block_ms
        self.max_events = max_events
        self.read = 0
        self._last = 0
        self._ahead: ReadAhead | None = None

    def _count(self) -> int:
        count = self.runner.settings.consume_batch
        if self.max_events is not None:
            count = min(count, self.max_events - self.read)
        return count

    def next(self) -> MessageBatch:
        """The batch read ahead, or a batch read now."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            msgs = ahead.result()
        else:
            s = self.runner.settings
            msgs = self.runner.queue.consume_batch(
                s.events_topic, s.consumer_group, self.runner.consumer,
                count=max(1, self._count()), block_ms=self.block_ms,
            )  # fmt: skip
        self.read += len(msgs)
        self._last = len(msgs)
        return msgs

    def ahead(self) -> None:
        """Send the next read now (only after a read that found messages: an idle stream
        is polled by :meth:`next`, with its blocking wait)."""
        count = self._count()
        if self._ahead is None and self._last and count > 0:
            s = self.runner.settings
            self._ahead = self.runner.queue.read_ahead(
                s.events_topic, s.consumer_group, self.runner.consumer, count=count
            )

    def drain(self) -> list[MessageBatch]:
        """The batch read ahead, if any (waits for it)."""
        if self._ahead is None:
            return []
        msgs = self.next()
        return [msgs] if msgs else []

    def close(self) -> None:
        """Drop a read still under way (its messages stay pending for recovery)."""
        if self._ahead is not None:
            self._ahead.cancel()
            self._ahead = None

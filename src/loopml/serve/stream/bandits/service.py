"""A bandit as a queue service: requests in, decisions out, click feedback back in.

``bandit_requests`` carry ``request_id``, the candidate items and the user's context;
the service answers on ``bandit_decisions`` with the chosen item and keeps the decision
until its feedback (``bandit_feedback``: ``request_id``, ``reward``) arrives, then
updates the policy. Feedback is deduplicated by request id, so a redelivered click
never counts twice, and messages are acked only after they took effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopml.storage.queues.dedup import SeenIds

if TYPE_CHECKING:
    from loopml.serve.stream.bandits.policies import Policy
    from loopml.storage.queues.base import Queue

REQUESTS, DECISIONS, FEEDBACK = "bandit_requests", "bandit_decisions", "bandit_feedback"


class BanditService:
    """Serve one policy over a queue (`loopml bandit serve` would loop :meth:`step`)."""

    def __init__(self, queue: Queue, policy: Policy, name: str = "bandit") -> None:
        self.queue = queue
        self.policy = policy
        self.name = name
        self.decisions_: dict[str, tuple[str, dict[str, Any]]] = {}
        self.seen_ = SeenIds()
        self.counts_ = {"requests": 0, "feedback": 0, "duplicate_feedback": 0, "unknown": 0}

    def step(self, count: int = 1000, block_ms: int = 0) -> int:
        """Answer waiting requests, then apply waiting feedback; return messages handled."""
        return self._answer(count, block_ms) + self._learn(count)

    def _answer(self, count: int, block_ms: int) -> int:
        msgs = self.queue.consume(REQUESTS, self.name, self.name, count=count, block_ms=block_ms)
        if not msgs:
            return 0
        out = []
        for m in msgs:
            req = m.payload
            context = req.get("context") or {}
            arm = self.policy.select(req["candidates"], context)
            self.decisions_[req["request_id"]] = (arm, context)
            out.append(
                {"request_id": req["request_id"], "item_id": arm, "policy": self.policy.name}
            )
        self.queue.publish_many(DECISIONS, out, [m.key for m in msgs])
        self.queue.ack(REQUESTS, self.name, msgs)
        self.counts_["requests"] += len(msgs)
        return len(msgs)

    def _learn(self, count: int) -> int:
        msgs = self.queue.consume(FEEDBACK, self.name, self.name, count=count)
        for m in msgs:
            rid = m.payload.get("request_id")
            if not self.seen_.add(str(rid)):
                self.counts_["duplicate_feedback"] += 1
                continue
            decision = self.decisions_.pop(rid, None)
            if decision is None:
                self.counts_["unknown"] += 1
                continue
            arm, context = decision
            self.policy.update(arm, float(m.payload.get("reward", 0.0)), context)
            self.counts_["feedback"] += 1
        if msgs:
            self.queue.ack(FEEDBACK, self.name, msgs)
        return len(msgs)

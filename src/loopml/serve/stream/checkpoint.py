"""The learner's commit point: its whole state, written atomically before messages are acked.

Acknowledging a message before the model's change from it is durable would lose it on
a crash; learning it again after a restart would count it twice. So the runner writes
a checkpoint (the pickled :class:`~loopml.serve.stream.learner.OnlineLearner`, which
includes the last applied stream position per partition) and only then acks. After a
SIGKILL the restarted learner loads the checkpoint, the queue redelivers what was not
acked, and positions at or before the checkpoint are skipped: nothing lost, nothing
learnt twice. Checkpoints live in the project's artifact store (local or any fsspec
URL), written with an atomic replace. The model travels as its registry artifact bytes
(:func:`loopml.predict.river.save_model`), so a checkpoint taken right after a snapshot
reuses the snapshot's bytes instead of pickling the model a second time.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from typing import Any

from loopml.core.errors import IntegrityError, NotFoundError
from loopml.core.names import check_name
from loopml.storage.artifacts import ArtifactStore

_FORMAT = "loopml.stream.checkpoint/2"
_FORMAT_V1 = "loopml.stream.checkpoint/1"  # the model pickled inside the learner


@dataclass
class Checkpoint:
    """What a restarted learner needs: the learner and the snapshot lineage so far."""

    learner: Any
    parent_version: int | None = None
    snapshots: int = 0
    learnt_at_snapshot: int = 0
    saved_at: float = field(default_factory=time.time)
    settings: dict[str, Any] = field(default_factory=dict)


class CheckpointStore:
    """Save and load the checkpoint of the learner called ``name``.

    >>> import tempfile
    >>> store = CheckpointStore(tempfile.mkdtemp(), "ctr_stream")
    >>> store.load() is None
    True
    >>> store.save(Checkpoint(learner={"n": 3}, parent_version=2))
    >>> store.load().parent_version
    2
    """

    def __init__(self, artifact_root: str, name: str) -> None:
        self.name = check_name(name, "learner name")
        self.key = f"stream/{name}/checkpoint.pkl"
        self._store = ArtifactStore(artifact_root)

    def save(self, checkpoint: Checkpoint, model_artifact: bytes | None = None) -> None:
        """Write ``checkpoint`` atomically.

        ``model_artifact`` is the learner's model as :func:`save_model` bytes when the
        caller has them already (a snapshot just registered); otherwise they are made here.
        """
        checkpoint.saved_at = time.time()
        learner = checkpoint.learner
        if not hasattr(learner, "detached_model"):  # any other picklable state
            blob = {"format": _FORMAT, "checkpoint": checkpoint, "model": None}
            data = pickle.dumps(blob, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            if model_artifact is None:
                from loopml.predict.river import save_model

                model_artifact = save_model(learner.model_)
            with learner.detached_model():
                blob = {"format": _FORMAT, "checkpoint": checkpoint, "model": model_artifact}
                data = pickle.dumps(blob, protocol=pickle.HIGHEST_PROTOCOL)
        self._store.put_bytes(self.key, data)

    def load(self) -> Checkpoint | None:
        """The last checkpoint, or None when the learner never committed."""
        try:
            data = self._store.get_bytes(self.key)
        except NotFoundError:
            return None
        try:
            blob = pickle.loads(data)  # noqa: S301 - written only by this store
        except Exception as exc:
            raise IntegrityError(
                f"checkpoint {self.key} cannot be read ({type(exc).__name__}: {exc}); delete "
                "it to restart the learner from the beginning of the stream",
                key=self.key,
            ) from None
        if not isinstance(blob, dict) or blob.get("format") not in (_FORMAT, _FORMAT_V1):
            raise IntegrityError(
                f"checkpoint {self.key} has an unknown format; delete it to restart from "
                "the beginning of the stream",
                key=self.key,
            )
        checkpoint = blob["checkpoint"]
        if blob.get("model") is not None:
            from loopml.predict.river import load_model

            checkpoint.learner.attach_model(load_model(blob["model"]))
        return checkpoint

    def delete(self) -> bool:
        """Forget the checkpoint (the learner restarts from scratch); True if one existed."""
        path = self._store.local_path(self.key) if self._store._local else None
        if path is not None and path.exists():
            path.unlink()
            return True
        return False

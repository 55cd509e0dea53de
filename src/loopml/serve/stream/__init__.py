"""Pattern 4: learn and predict in real time over a message queue.

The learner (:mod:`.learner`) predicts each event on arrival and learns once its label
is due (:mod:`.join`), scored by progressive validation (:mod:`.progressive`); the
runner (:mod:`.runner`) moves it between the queue, checkpoints and the registry
(:mod:`.checkpoint`, :mod:`.snapshots`); :mod:`.layers` pairs it with a batch layer and
:mod:`.bandits` chooses items with click feedback. Names resolve lazily so importing
the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "OnlineLearner": "loopml.serve.stream.learner",
    "StreamRunner": "loopml.serve.stream.runner",
    "StreamSettings": "loopml.serve.stream.settings",
    "compare_stream_vs_daily_batch": "loopml.serve.stream.comparison",
    "plot_comparison": "loopml.serve.stream.comparison",
    "plot_progressive_curve": "loopml.serve.stream.comparison",
    "plot_stream": "loopml.serve.stream.status",
    "produce_sim": "loopml.serve.stream.produce",
    "publish_events": "loopml.serve.stream.produce",
    "run_batch_layer": "loopml.serve.stream.layers",
    "run_learner": "loopml.serve.stream.runner",
    "stream_status": "loopml.serve.stream.status",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.serve.stream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

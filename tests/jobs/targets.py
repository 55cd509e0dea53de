"""Job bodies for the scheduler tests, importable by a child process as ``tests.jobs.targets``."""

from __future__ import annotations

import time
from pathlib import Path


def record(path: str) -> dict:
    """Append one line per execution; return how many executions there have been."""
    with open(path, "a") as fh:
        fh.write("ran\n")
    return {"executions": len(Path(path).read_text().splitlines())}


def fail_until(path: str, failures: int) -> dict:
    """Fail the first ``failures`` executions, then succeed."""
    done = record(path)["executions"]
    if done <= failures:
        raise RuntimeError(f"planned failure {done} of {failures}")
    return {"executions": done}


def sleepy(path: str, seconds: float) -> dict:
    """Say it started, then work for ``seconds`` (long enough to be killed)."""
    record(path)
    time.sleep(seconds)
    return {"slept": seconds}


def flaky_dataset(config, start, end, lineage):  # noqa: ANN001, ANN201
    """The default retraining data, but the first call fails while a flag file exists."""
    from loopml.jobs.candidates import default_dataset

    flag = Path(config.root) / "fail-once"
    if flag.exists():
        flag.unlink()
        raise RuntimeError("planned failure while building the training set")
    return default_dataset(config, start, end, lineage)


def hanging_dataset(config, start, end, lineage):  # noqa: ANN001, ANN201
    """Hangs (to be killed) while the flag file ``hang`` exists; else the default data."""
    from loopml.jobs.candidates import default_dataset

    if (Path(config.root) / "hang").exists():
        (Path(config.root) / "started").write_text("retraining")
        time.sleep(120)
    return default_dataset(config, start, end, lineage)

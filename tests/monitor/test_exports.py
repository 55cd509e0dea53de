"""Pin loopml.monitor's public names, and keep the package import light."""

from __future__ import annotations

import subprocess
import sys

import loopml.monitor


def test_public_names_are_pinned_and_resolve():
    assert loopml.monitor.__all__ == [
        "AlertEngine",
        "AlertRule",
        "DriftConfig",
        "DriftReport",
        "Monitor",
        "MonitorStore",
        "QualityConfig",
        "ReferenceProfile",
        "WindowSummary",
        "build_profile",
        "check_drift",
        "check_quality",
        "compare",
        "parse_metrics",
        "scrape",
        "summarise",
    ]
    for name in loopml.monitor.__all__:
        assert getattr(loopml.monitor, name) is not None


def test_importing_the_packages_loads_nothing_heavy():
    code = (
        "import sys, loopml.monitor, loopml.jobs\n"
        "print(','.join(m for m in ('numpy', 'pandas', 'sqlalchemy', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

"""Rebuild bench/RESULTS.md: the goals table (bench/results/_goals.md), then every result.

Each benchmark writes its own ``bench/results/<name>.md``; run this after any of them::

    .venv/bin/python bench/assemble.py
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["batch", "serve", "edge", "stream", "rollout", "drift", "eventlog_features"]


def main() -> None:
    results = HERE / "results"
    names = ORDER + sorted(
        p.stem for p in results.glob("*.md") if p.stem not in ORDER and not p.stem.startswith("_")
    )
    parts = [(results / "_goals.md").read_text().rstrip()]
    parts += [(results / f"{name}.md").read_text().rstrip() for name in names]
    (HERE / "RESULTS.md").write_text("\n\n".join(parts) + "\n")
    print(f"bench/RESULTS.md: goals + {len(names)} results")


if __name__ == "__main__":
    main()

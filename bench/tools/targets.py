"""Issue 18's targets from a ``bench/run`` result, as Markdown for docs/performance.md.

    .venv/bin/python bench/tools/targets.py [bench/results/latest.json]

Each target with the median figures and, with ``--repeat N``, each pass's; every ratio with
the figure it was taken against (the same run's naive relay or bare endpoint). ``bench/run``
writes the same next to its JSON (``latest-targets.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))  # the harness package, as bench/bench.py imports it

from harness.targets import markdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="?", default=str(BENCH / "results" / "latest.json"))
    args = parser.parse_args(argv)
    sys.stdout.write(markdown(json.loads(Path(args.json).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Worst-case inputs for the checks that run before authentication, at growing sizes.

For each family of ``tests/hostile.py`` (a run of ``<?a?>`` before the root, escaped quotes in an
unterminated JSON string, thousands of unclosed ``<Password>`` tags, 4,300-digit counts, ...), times
what the receiver does with a refused document: parse it (the SOAP or REST callback parser, and
the XML one in repair mode) and redact it for the dead letters. Prints microseconds per KiB at
16, 64, 256 and 1,024 KiB, and the ratio of the largest size's cost per KiB to the smallest's:
flat (about 1) is linear; a quadratic check would show about 64, an exponential one never ends.

The baseline in the same process is a plain ``bytes.count(b"<")`` over the same document: the
cheapest possible linear pass, so the "x scan" column says how many such passes each check costs.

    python benchmarks/hostile_inputs.py [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile import FAMILIES

from uws_adapter import CallbackParseError, parse_callback, parse_rest_callback
from uws_adapter.redaction import redact

SIZES_KIB = (16, 64, 256, 1024)


def refuse(media_type: str) -> Callable[[bytes], None]:
    def xml(document: bytes) -> None:
        for repair in (False, True):
            with contextlib.suppress(CallbackParseError):
                parse_callback(document, repair=repair, max_bytes=2 * 1024 * 1024)
        redact(document, ["secret"], limit=64 * 1024)

    def json(document: bytes) -> None:
        with contextlib.suppress(CallbackParseError):
            parse_rest_callback(document, max_bytes=2 * 1024 * 1024)
        redact(document, ["secret"], limit=64 * 1024)

    return json if media_type == "application/json" else xml


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per size (default 3)")
    args = parser.parse_args()
    header = "family".ljust(30) + "".join(f"{f'{k} KiB':>12}" for k in SIZES_KIB) + "  us/KiB growth  x scan"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, (media_type, make) in FAMILIES.items():
        check = refuse(media_type)
        per_kib: Dict[int, float] = {}
        scan_per_kib = 0.0
        for kib in SIZES_KIB:
            document = make(kib * 1024)
            per_kib[kib] = best_of(args.repeat, lambda d=document, c=check: c(d)) / kib * 1e6  # type: ignore[misc]
            scan_per_kib = best_of(args.repeat, lambda d=document: d.count(b"<")) / kib * 1e6  # type: ignore[misc]
        growth = per_kib[SIZES_KIB[-1]] / per_kib[SIZES_KIB[0]]
        worst = max(worst, growth)
        cells = "".join(f"{per_kib[k]:>12.1f}" for k in SIZES_KIB)
        print(f"{name:<30}{cells}{growth:>15.2f}{per_kib[SIZES_KIB[-1]] / max(scan_per_kib, 1e-9):>8.0f}")
    print(f"\nworst growth of the cost per KiB from {SIZES_KIB[0]} to {SIZES_KIB[-1]} KiB: {worst:.2f}x "
          f"(linear is about 1; quadratic would be about {SIZES_KIB[-1] // SIZES_KIB[0]})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bulk ChangeDeviceState envelopes: our builder against plain zeep, in one process.

Prints, for 100, 1,000 and 10,000 devices, the best-of-N time of each, the message sizes and the
ratios. The baseline is what zeep does to send: ``create_message`` then ``etree.tostring``.

    python benchmarks/envelope_bulk.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, List, Tuple

from lxml import etree

from uws_adapter import Device, Restore, Selection, build_envelope, select, zeep_envelope


def _devices(count: int) -> List[Device]:
    return [Device.of("IMEI", f"{350000000000000 + n}") for n in range(count)]


def _best(func: Callable[[], bytes], repeat: int) -> Tuple[float, bytes]:
    best = float("inf")
    out = b""
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per size; the best is kept")
    args = parser.parse_args()
    build_envelope(Restore(), select(_devices(1)), token="t")  # load the WSDL outside the timings

    header = ("devices", "zeep ms", "ours ms", "speed-up", "zeep bytes", "ours bytes", "size")
    print("{:>8} {:>10} {:>10} {:>9} {:>11} {:>11} {:>6}".format(*header))
    for count in (100, 1_000, 10_000):
        selection = select(_devices(count))

        def plain(selection: Selection = selection) -> bytes:
            return etree.tostring(zeep_envelope(Restore(), selection, token="token"))

        def ours(selection: Selection = selection) -> bytes:
            return build_envelope(Restore(), selection, token="token").body

        zeep_s, zeep_out = _best(plain, max(1, args.repeat if count < 10_000 else min(args.repeat, 3)))
        ours_s, ours_out = _best(ours, args.repeat)
        print(
            f"{count:>8,} {zeep_s * 1e3:>10.2f} {ours_s * 1e3:>10.2f} {zeep_s / ours_s:>8.1f}x "
            f"{len(zeep_out):>11,} {len(ours_out):>11,} {len(ours_out) / len(zeep_out):>6.2f}"
        )


if __name__ == "__main__":
    main()

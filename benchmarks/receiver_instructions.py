"""Instructions per callback of the receiver's own steps, counted by valgrind: a figure the shared
machine's load does not move, for telling apart changes of a percent or two that CPU time cannot.

    python benchmarks/receiver_instructions.py [--steps row,commit,stack] [--items N]

Each step runs in a child process under ``valgrind --tool=callgrind`` twice, with ``--items`` and
with three times as many; the difference of the two instruction totals over the difference of the
items is the step's instructions per callback (the start-up, the imports and the set-up cancel out).
The steps: ``row`` the stored form of a callback (``callback_row``); ``commit`` a group commit of 8
at ``synchronous=NORMAL`` per callback (no fsync: the kernel's work is not counted anyway);
``stack`` the application a uvicorn worker builds (access line, receiver) driven by ASGI messages in
bursts of 8, its groups committed at once in the loop's own thread by a store that answers at once.
That is an experiment's arrangement, not the product's: with the committer threads in the run
(``threads``, the same with the product's hand-over), valgrind runs the threads one at a time and
the instructions spent trading the GIL follow how their turns fall, which moves the count more than
a small change does.

What it cannot see: the kernel (system calls, context switches, the fsync), time lost to caches,
and threads running at once. For A/B, run it once with a copy of the other package first on
``PYTHONPATH``. Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Sequence

HERE = Path(__file__).resolve().parent
STEPS = ("row", "commit", "stack", "threads")
DOCUMENTS = 1200  # parsed in every run, whatever the items: the set-up must not grow with them


def run_step(step: str, items: int) -> None:
    """The child's work: ``items`` callbacks through ``step``, after a fixed set-up."""
    folder = tempfile.mkdtemp()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from receiver_stack_cpu import documents

    from uws_adapter.callbacks.uws_xml import callback_element, read_callback
    from uws_adapter.receiver.app import Receiver
    from uws_adapter.store import open_store

    bodies = documents(max(DOCUMENTS, items))
    if step == "row":
        from uws_adapter.store.rows import callback_row

        callbacks = [read_callback(callback_element(body)[0]) for body in bodies[:DOCUMENTS]]
        for callback in callbacks[:items]:
            callback_row(callback)
    elif step == "commit":
        store = open_store(str(Path(folder) / "bench.db"), synchronous="NORMAL")
        receiver = Receiver(store, allow_anonymous=True)
        writes = [receiver.intake(body, "text/xml").write for body in bodies[:DOCUMENTS]]  # type: ignore[union-attr]
        for start in range(0, items, 8):
            store.commit_group(writes[start : start + 8])
    else:
        run_stack(bodies[:items], folder, threaded=step == "threads")
    sys.stdout.flush()
    os._exit(0)  # no shutdown to count


def run_stack(bodies: Sequence[bytes], folder: str, *, threaded: bool = False) -> None:
    import uvloop
    from receiver_stack_cpu import deliver

    from uws_adapter.logs import configure_logging
    from uws_adapter.receiver.app import Receiver
    from uws_adapter.receiver.asgi import AsyncReceiver
    from uws_adapter.serving.access import AsgiAccessLog
    from uws_adapter.store import open_store
    from uws_adapter.store.interfaces import Outcome

    sys.stderr = open(Path(folder) / "receiver.log", "w")  # noqa: SIM115 (the child exits with it open)
    configure_logging("info")
    store = open_store(str(Path(folder) / "bench.db"))
    store.commit_group = lambda writes: [Outcome((n, True)) for n in range(1, len(writes) + 1)]  # type: ignore[method-assign]

    class InLoop(AsyncReceiver):
        """Commits each group in the loop's thread: one thread for valgrind to count."""

        def _start_groups(self) -> None:
            self._scheduled = False
            parked, self._parked = self._parked, []
            self._answer(parked, self._commit_items(parked))

    class InLoopBefore(AsyncReceiver):
        """The same for a package from before the committers of the eighth round (a task per group,
        for A/B against it): its groups were committed by ``_commit_chunk``."""

        async def _commit_chunk(self, chunk: List[Any]) -> None:
            try:
                outcomes = self._commit([intake.write for intake, _ in chunk])
                committed = []
                for (intake, future), outcome in zip(chunk, outcomes):
                    if not future.done():
                        future.set_result(outcome.result)
                        committed.append((intake, outcome.result))
                self.receiver.committed_group(committed)
            finally:
                self._in_flight -= 1  # type: ignore[attr-defined]
                self._start_groups()

    chosen: type = InLoop if hasattr(AsyncReceiver, "_answer") else InLoopBefore
    if threaded:  # the product's own hand-over to its committer threads (see the module's note)
        chosen = AsyncReceiver
    app = AsgiAccessLog(chosen(Receiver(store, allow_anonymous=True)), "receiver")

    async def drive() -> None:
        for start in range(0, len(bodies), 8):
            await asyncio.gather(*(deliver(app, body) for body in bodies[start : start + 8]))

    uvloop.install()
    asyncio.run(drive())


def counted(step: str, items: int) -> int:
    """valgrind's instruction total of a child running ``step`` over ``items`` callbacks."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                   "--child", step, "--items", str(items)]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, cwd=HERE)
        total = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        if total is None:
            raise SystemExit(f"no instruction total in valgrind's output for {step}")
        return int(total.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="row,commit,stack", help=f"some of {', '.join(STEPS)}")
    parser.add_argument("--items", type=int, default=400, help="callbacks in the first run (3x in the second)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(HERE))
        run_step(args.child, args.items)
    steps = [step for step in args.steps.split(",") if step]
    unknown = [step for step in steps if step not in STEPS]
    if unknown or args.items < 1:
        raise SystemExit(f"steps are some of {', '.join(STEPS)} (got {', '.join(unknown)}); --items at least 1")
    import uws_adapter

    print(f"instructions per callback (valgrind), package {Path(uws_adapter.__file__).parent}")
    for step in steps:
        first, second = counted(step, args.items), counted(step, 3 * args.items)
        print(f"  {step:7} {(second - first) / (2 * args.items):12,.0f}")


if __name__ == "__main__":
    main()

"""The committers' hand-over under real contention (uws_adapter.receiver.committers): several event
loops, each in its own thread, hand groups over at once to two committer threads whose commits do
nothing but record, while the committers take queued groups themselves; then close() races the
loops' hand-overs. Every item handed over is committed once and answered once, in its own loop's
thread, with its own outcome; every item refused (ShuttingDown) is never committed; no group mixes
loops or exceeds max_batch; and no group stays queued while every committer sleeps (the test would
wait for its answer until BOUND). No timing: the test waits on events and a barrier."""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, Dict, List, Sequence, Set, Tuple

from uws_adapter.receiver.committers import Committers, ShuttingDown
from uws_adapter.store.interfaces import Outcome

#: Seconds a test waits for an answer before it fails (only a lost group waits this long).
BOUND = 60.0
LOOPS = 3
GROUPS = 400
MAX_BATCH = 5

#: (loop number, sequence number)
Item = Tuple[int, int]
Answer = Callable[[List[Item], Sequence[Outcome]], None]


class Ledger:
    """What was committed and answered, from every thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.committed: List[Item] = []
        self.groups: List[List[Item]] = []
        self.answered: Dict[int, List[Item]] = {n: [] for n in range(LOOPS)}
        self.wrong: List[str] = []

    def commit(self, items: List[Item]) -> Sequence[Outcome]:
        with self.lock:
            self.groups.append(list(items))
            self.committed.extend(items)
        return [Outcome(result=item) for item in items]


def _loop_thread(
    number: int,
    committers: Committers[Item],
    answers: Dict[int, Answer],
    ledger: Ledger,
    start: threading.Barrier,
    handed: Dict[int, Set[Item]],
    refused: Dict[int, Set[Item]],
    closing: threading.Event,
) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        me = threading.current_thread()
        pending: Set[Item] = set()
        done = asyncio.Event()

        def answer(items: List[Item], outcomes: Sequence[Outcome]) -> None:
            if threading.current_thread() is not me:
                ledger.wrong.append(f"loop {number}'s answer ran in {threading.current_thread().name}")
            for item, outcome in zip(items, outcomes):
                if item[0] != number or outcome.result != item:
                    ledger.wrong.append(f"loop {number} answered {item} with {outcome.result}")
                ledger.answered[number].append(item)
                pending.discard(item)
            if not pending and closing.is_set():
                done.set()

        answers[number] = answer
        start.wait(BOUND)
        sequence = 0
        for group in range(GROUPS):
            items = [(number, sequence + k) for k in range(1 + (group * 7 + number) % (2 * MAX_BATCH + 1))]
            sequence += len(items)
            try:
                committers.hand_over(loop, list(items))
            except ShuttingDown:
                refused[number].update(items)
            else:
                handed[number].update(items)
                pending.update(items)
            if group % 3 == number % 3:
                await asyncio.sleep(0)  # answers run between hand-overs, as in a server
            if group == GROUPS // 2 and number == 0:
                closing.set()  # the closer starts while the loops go on handing over
        closing.wait(BOUND)
        if pending:
            await asyncio.wait_for(done.wait(), BOUND)

    asyncio.run(run())


def test_every_group_from_several_loops_is_committed_and_answered_once_even_across_close() -> None:
    ledger = Ledger()
    answers: Dict[int, Answer] = {}

    def answer(items: List[Item], outcomes: Sequence[Outcome]) -> None:  # in the items' loop's thread
        answers[items[0][0]](items, outcomes)

    committers: Committers[Item] = Committers(ledger.commit, answer, count=2, max_batch=MAX_BATCH)
    handed: Dict[int, Set[Item]] = {n: set() for n in range(LOOPS)}
    refused: Dict[int, Set[Item]] = {n: set() for n in range(LOOPS)}
    closing = threading.Event()
    start = threading.Barrier(LOOPS + 1)
    threads = [
        threading.Thread(target=_loop_thread, args=(n, committers, answers, ledger, start, handed, refused, closing))
        for n in range(LOOPS)
    ]
    for thread in threads:
        thread.start()
    start.wait(BOUND)
    assert closing.wait(BOUND)
    committers.close()  # while the loops hand over: what it accepted is committed, the rest refused
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive(), "a loop waited for an answer that never came"

    assert ledger.wrong == []
    assert committers.queued == 0
    assert all(not thread.is_alive() for thread in committers.threads())
    committed = ledger.committed
    assert len(committed) == len(set(committed)), "an item was committed twice"
    every_handed = set().union(*handed.values())
    assert set(committed) == every_handed
    assert not set().union(*refused.values()) & every_handed
    for n in range(LOOPS):
        assert sorted(ledger.answered[n]) == sorted(handed[n]), f"loop {n}: answered is not what was handed over"
    for group in ledger.groups:
        assert 0 < len(group) <= MAX_BATCH
        assert len({item[0] for item in group}) == 1, f"a group mixed loops: {group}"
        assert group == sorted(group), "a loop's items were committed out of the order it handed them over"

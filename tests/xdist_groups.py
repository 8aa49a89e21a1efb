"""Keeps ``--dist loadgroup`` working: the tests of one ``xdist_group`` run on one worker, so that
an interop client is built once per run (tests/interop), not once per worker.

pytest-xdist (3.8, the newest) marks a test's group by appending ``@group`` to its node id on the
worker, through an attribute that pytest 9.2 no longer reads (node ids are now built from a
structured id): the groups were silently spread over all workers, and each worker built the .NET
listeners and clients again. Where the suffix did not take, it is written here through the node id
pytest reads (its own ``NodeId.parse``); on older pytest (the floors) xdist's own suffix is there and
nothing is done.
"""

from __future__ import annotations

from typing import List

import pytest

__all__: List[str] = []


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own attempt
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):  # set on the workers of a --dist loadgroup run
        return
    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")
        }
        if not names:
            continue
        suffix = "@" + "_".join(sorted(names))
        node_id = getattr(item, "_id", None)
        if item.nodeid.endswith(suffix) or node_id is None or not hasattr(type(node_id), "parse"):
            continue
        item._id = type(node_id).parse(item.nodeid + suffix)

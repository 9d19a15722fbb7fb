"""Netlink dumps the kernel flags interrupted (the link table changed meanwhile, as when
matrix cells build labs side by side) are asked again, never used."""

from __future__ import annotations

import pytest
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted

from labctl.backends.links import DUMP_ATTEMPTS, dump

pytestmark = pytest.mark.unit


def test_an_interrupted_dump_is_asked_again() -> None:
    answers: list[object] = [NetlinkDumpInterrupted(), NetlinkDumpInterrupted(), ["lo", "eth0"]]

    def request() -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    assert dump(request) == ["lo", "eth0"]
    assert answers == []


def test_a_dump_that_keeps_being_interrupted_raises() -> None:
    calls = 0

    def request() -> list[str]:
        nonlocal calls
        calls += 1
        raise NetlinkDumpInterrupted()

    with pytest.raises(NetlinkDumpInterrupted):
        dump(request)
    assert calls == DUMP_ATTEMPTS

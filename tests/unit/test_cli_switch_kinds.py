from __future__ import annotations

import pytest

from labctl.cli import RUNTIME_KINDS, SWITCH_KINDS
from labctl.core.model import RuntimeKind, SwitchKind

pytestmark = pytest.mark.unit


def test_cli_lists_every_switch_kind_of_the_model() -> None:
    assert [kind.value for kind in SwitchKind] == SWITCH_KINDS


def test_cli_lists_every_runtime_kind_of_the_model() -> None:
    assert [kind.value for kind in RuntimeKind] == RUNTIME_KINDS

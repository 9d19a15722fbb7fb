from __future__ import annotations

import pytest

from labctl.cli import SWITCH_KINDS
from labctl.core.model import SwitchKind

pytestmark = pytest.mark.unit


def test_cli_lists_every_switch_kind_of_the_model() -> None:
    assert [kind.value for kind in SwitchKind] == SWITCH_KINDS

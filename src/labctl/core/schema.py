"""JSON Schema of the topology file, for editors (yaml-language-server)."""

from __future__ import annotations

from typing import Any

from labctl.core.model import Topology


def json_schema() -> dict[str, Any]:
    schema = Topology.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "labctl topology"
    return schema

"""The event schemas printed in docs/exchange.md and docs/registry.md are the ones the code publishes."""

import json
from pathlib import Path

from services.exchange.events import EVENTS
from services.registry.events import EVENTS as REGISTRY_EVENTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "exchange.md"


def test_exchange_event_schemas_in_the_docs_match_the_code():
    text = DOC.read_text(encoding="utf-8")
    block = text.split("```json\n")[-1].split("```")[0]
    documented = json.loads(block)
    assert documented == {name: model.model_json_schema() for name, model in EVENTS.items()}, (
        "regenerate the block with: .venv/bin/python -m services.exchange.events"
    )


def test_registry_event_schemas_in_the_docs_match_the_code():
    text = (DOC.parent / "registry.md").read_text(encoding="utf-8")
    block = text.split("```json\n")[-1].split("```")[0]
    documented = json.loads(block)
    assert documented == {name: model.model_json_schema() for name, model in REGISTRY_EVENTS.items()}, (
        "regenerate the block with: .venv/bin/python -m services.registry.events"
    )

"""The event schemas and error codes printed in docs/exchange.md and docs/registry.md are the ones
the code has."""

import json
import re
from pathlib import Path

from services.exchange import errors as exchange_errors
from services.exchange.events import EVENTS
from services.registry.events import EVENTS as REGISTRY_EVENTS
from shared.errors import LienThongError

DOC = Path(__file__).resolve().parents[2] / "docs" / "exchange.md"


def test_exchange_event_schemas_in_the_docs_match_the_code():
    text = DOC.read_text(encoding="utf-8")
    block = text.split("```json\n")[-1].split("```")[0]
    documented = json.loads(block)
    assert documented == {name: model.model_json_schema() for name, model in EVENTS.items()}, (
        "regenerate the block with: .venv/bin/python -m services.exchange.events"
    )


def test_exchange_error_codes_in_the_docs_match_the_code():
    """docs/exchange.md lists exactly the codes of services/exchange/errors.py as the exchange's own."""
    documented_part = DOC.read_text(encoding="utf-8").split("The exchange's own")[1].split("From the shared tree")[0]
    documented = set(re.findall(r"`([a-z_]+)`", documented_part))
    defined = {
        error.code
        for error in vars(exchange_errors).values()
        if isinstance(error, type)
        and issubclass(error, LienThongError)
        and error.__module__ == exchange_errors.__name__
    }
    assert documented == defined, "update the errors paragraph of docs/exchange.md"


def test_registry_event_schemas_in_the_docs_match_the_code():
    text = (DOC.parent / "registry.md").read_text(encoding="utf-8")
    block = text.split("```json\n")[-1].split("```")[0]
    documented = json.loads(block)
    assert documented == {name: model.model_json_schema() for name, model in REGISTRY_EVENTS.items()}, (
        "regenerate the block with: .venv/bin/python -m services.registry.events"
    )

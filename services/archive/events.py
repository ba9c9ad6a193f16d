"""Events of the archive.

The archive publishes no event yet. It consumes the exchange's document events (``document.submitted.v1``,
``document.signature_checked.v1``, ``delivery.status_changed.v1``, ``document.recall_requested.v1``,
``document.recalled.v1``, ``document.replaced.v1``; their payload models are in
``services.exchange.events``; see docs/exchange.md, "Events", and docs/archive.md, "Indexing").
When the archive publishes one, its typed payload model goes here and its JSON schema in
docs/archive.md, as the exchange does.
"""

from __future__ import annotations

PUBLISHED: tuple[str, ...] = ()

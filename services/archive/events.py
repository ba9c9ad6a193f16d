"""Events of the archive.

The archive publishes no event yet. It consumes the exchange's ``document.submitted.v1`` (its
payload model is ``services.exchange.events.DocumentSubmitted``; see docs/exchange.md, "Events").
When the archive publishes one, its typed payload model goes here and its JSON schema in
docs/archive.md, as the exchange does.
"""

from __future__ import annotations

PUBLISHED: tuple[str, ...] = ()

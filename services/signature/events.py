"""Events of the signature service: it publishes none yet. When it does, each event's typed payload
model goes here and its JSON schema in docs/signature.md, as the exchange does."""

from __future__ import annotations

PUBLISHED: tuple[str, ...] = ()

"""LienThong's common library: infrastructure every service uses, no domain models.

Modules: ``config`` (settings), ``db`` (engines, sessions), ``migrations`` (Alembic per service),
``errors`` (problem+json), ``messaging`` (outbox, relay, brokers, idempotent consumers), ``http``
(clients between services), ``observability`` (logs, metrics, health), ``auth`` (JWT, argon2),
``service`` (runtime and app factory).
"""

"""AMQP topic matching, as the in-process broker does it: `*` one word, `#` zero or more words."""

from __future__ import annotations

import pytest

from shared.messaging import topic_matches


@pytest.mark.parametrize(
    ("pattern", "routing_key"),
    [
        ("document.submitted.v1", "document.submitted.v1"),
        ("document.*.v1", "document.submitted.v1"),
        ("*.submitted.*", "document.submitted.v1"),
        ("document.#", "document.submitted.v1"),
        ("document.#", "document"),  # `#` may match zero words
        ("#", "document.submitted.v1"),
        ("#", "document"),
        ("#.v1", "document.submitted.v1"),
        ("#.v1", "v1"),
        ("document.#.v1", "document.v1"),
        ("document.#.v1", "document.status.changed.v1"),
        ("#.#", "a"),
        ("*.#", "a"),
        ("#.*", "a.b.c"),
    ],
)
def test_matches(pattern: str, routing_key: str) -> None:
    assert topic_matches(pattern, routing_key)


@pytest.mark.parametrize(
    ("pattern", "routing_key"),
    [
        ("document.submitted.v1", "document.submitted.v2"),
        ("document.submitted", "document.submitted.v1"),  # exact means the whole key
        ("document.submitted.v1", "document.submitted"),
        ("*.b", "a.c.b"),  # `*` is exactly one word
        ("*.b", "b"),
        ("a.*", "a"),
        ("*", "a.b"),
        ("document.#.v1", "document.submitted.v2"),
        ("#.v1", "v1.document"),
        ("a.#", "b.a"),
        ("document", "documents"),  # words, not prefixes
    ],
)
def test_does_not_match(pattern: str, routing_key: str) -> None:
    assert not topic_matches(pattern, routing_key)


def test_hash_matches_every_event_type_the_services_publish() -> None:
    keys = ["agency.created.v1", "client.created.v1", "document.submitted.v1", "delivery.status_changed.v1"]
    assert all(topic_matches("#", key) for key in keys)
    assert [key for key in keys if topic_matches("*.created.v1", key)] == keys[:2]

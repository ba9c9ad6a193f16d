"""The signature service's errors (problem+json codes under ``signature_*``); none yet."""

from __future__ import annotations

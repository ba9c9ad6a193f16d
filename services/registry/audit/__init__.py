"""The audit chain: every service's security-relevant actions, hash-chained and signed (docs/security.md)."""

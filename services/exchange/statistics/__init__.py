"""Statistics of the exchange: aggregates of the delivery history (never documents), by agency,
administrative level, month and subtree, read from rollups refreshed incrementally."""

"""A stand-in for the national document hub (docs/interop.md, "The national hub"): the same
operations over the same HTTP/JSON shape, packets kept in memory, and a switch to be down."""

from services.hub_double.app import HubDouble, HubDoubleClient, create_app

__all__ = ["HubDouble", "HubDoubleClient", "create_app"]

"""All settings of one LienThong process: the shared ones and every service's own section.

Read from ``LIENTHONG_*`` environment variables; nested sections use ``__``
(``LIENTHONG_EXCHANGE__MAX_ATTACHMENTS``). Validated when a process starts, so a wrong value stops
it with a clear message. Each section lives beside its service, in ``<service>/config.py``.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import GatewaySection
from services.archive.config import ArchiveSection
from services.exchange.config import ExchangeSection
from services.hub.config import HubSection
from services.registry.config import RegistrySection
from services.signature.config import SignatureSection
from shared.config import CoreSettings


class Settings(CoreSettings):
    """Every setting of a LienThong process."""

    gateway: GatewaySection = GatewaySection()
    registry: RegistrySection = RegistrySection()
    exchange: ExchangeSection = ExchangeSection()
    signature: SignatureSection = SignatureSection()
    archive: ArchiveSection = ArchiveSection()
    hub: HubSection = HubSection()

    @property
    def blob_dir(self) -> Path:
        """Where the exchange keeps attachments."""
        return self.exchange.blob_dir or self.var_dir / "blobs"

"""What the ambassadors service's handlers share: its settings, the runtime's handles, the
certificate serials, the confirmation links' signer, and the certificate renderer."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

from services.ambassadors.settings import AmbassadorsSettings
from services.ambassadors.store import CertificateSerials
from services.runtime.background import Loop
from services.runtime.service import Service
from services.runtime.tokens import AMBASSADOR_CONFIRMATION, Signer


@dataclass
class Context:
    service: Service
    settings: AmbassadorsSettings
    serials: CertificateSerials = field(default_factory=CertificateSerials)
    # The process that renders certificate PDFs (started on first use), and the loop that
    # renders pending ones and deletes erased people's PDFs (woken after an activation).
    renderer: ProcessPoolExecutor | None = None
    certificates: Loop | None = None

    @cached_property
    def confirmations(self) -> Signer:
        return Signer(self.settings.ambassadors_token_secret, AMBASSADOR_CONFIRMATION)

    def wake_certificates(self) -> None:
        if self.certificates is not None:
            self.certificates.wake()

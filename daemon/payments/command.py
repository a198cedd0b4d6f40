"""The ``vietqrPayload`` daemon command: one correct VietQR code for every UI."""

from __future__ import annotations

from daemon.api.schema import VietQRParams, VietQRResult
from daemon.config import VietQRConfig

from .vietqr import Service, Transfer, build, qr_rows


def vietqr_payload(config: VietQRConfig, params: VietQRParams) -> VietQRResult:
    """The dynamic VietQR asking ``params.amount`` VND into the configured account.

    Raises:
        VietQRError: (a ValueError) the request cannot make a valid payload.

    """
    transfer = Transfer(
        bin=config.bin,
        account=config.account,
        service=Service.CARD if config.service == "card" else Service.ACCOUNT,
        amount=params.amount,
        bill_number=params.reference,
        purpose=params.reference,
    )
    payload = build(transfer)
    return VietQRResult(
        payload=payload,
        qr=qr_rows(payload),
        amount=params.amount,
        reference=params.reference,
        bin=config.bin,
        account=config.account,
        account_name=config.account_name,
    )

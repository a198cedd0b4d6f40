"""PACE on domain parameters EF.CardAccess gives explicitly (PACEDomainParameterInfo), constructed.

ICAO 9303-11 lets a chip define proprietary domain parameters (IDs 32-63) in a
``PACEDomainParameterInfo``.  The vectors are constructed: brainpoolP256r1's
parameters written out (matched to the named curve), and the same group with the
generator 2G (equal to no standardized curve: handled directly).  No real chip
with proprietary PACE parameters was found in public data.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from asn1crypto import core
from asn1crypto import keys as asn1_keys
from ecdsa import curves

from devices.card_reader.icao import pace, tlv
from devices.card_reader.icao.lds import Ef
from devices.card_reader.icao.reader import read_identity
from devices.card_reader.identity import PaceKey
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.chip import EmrtdChip
from devices.sim.card_reader.vcard.files import card_files

CARD = SPECIMEN_CARDS["default"]
PROPRIETARY_ID = 32


def ec_parameters(curve: Any) -> bytes:
    """DER ``ECParameters`` with ``curve`` written out (constructed)."""
    field = curve.curve
    g = curve.generator
    size = (field.p().bit_length() + 7) // 8
    return asn1_keys.ECDomainParameters(
        name="specified",
        value=asn1_keys.SpecifiedECDomain(
            {
                "version": "ecdpVer1",
                "field_id": {"field_type": "prime_field", "parameters": field.p()},
                "curve": {
                    "a": field.a().to_bytes(size, "big"),
                    "b": field.b().to_bytes(size, "big"),
                },
                "base": b"\x04"
                + int(g.x()).to_bytes(size, "big")
                + int(g.y()).to_bytes(size, "big"),
                "order": int(curve.order),
                "cofactor": 1,
            }
        ),
    ).dump()


def card_access(curve: Any) -> bytes:
    """EF.CardAccess: a PACEInfo on parameter ID 32 and the PACEDomainParameterInfo defining it."""
    info = pace.PaceInfo(f"{pace.ID_PACE}.2.2", 2, PROPRIETARY_ID).encode()
    algorithm = tlv.encode(0x06, bytes(core.ObjectIdentifier("1.2.840.10045.2.1").contents))
    domain_info = tlv.encode(
        0x30,
        tlv.encode(0x06, pace.oid_bytes(f"{pace.ID_PACE}.2"))
        + tlv.encode(0x30, algorithm + ec_parameters(curve))
        + tlv.encode(0x02, bytes([PROPRIETARY_ID])),
    )
    return tlv.encode(0x31, info + domain_info)


CUSTOM = curves.Curve(
    "custom", curves.BRAINPOOLP256r1.curve, curves.BRAINPOOLP256r1.generator * 2, (1, 3, 9999, 3)
)


@pytest.mark.parametrize(
    ("curve", "name"), [(curves.BRAINPOOLP256r1, "BRAINPOOLP256r1"), (CUSTOM, "explicit")]
)
def test_explicit_pace_domain_parameters_are_read(curve: Any, name: str) -> None:
    (info,) = pace.parse_card_access(card_access(curve))
    assert info.parameter_id == PROPRIETARY_ID
    assert info.supported
    assert info.domain.name == name
    assert info.domain.generator == curve.generator


@pytest.mark.parametrize("curve", [curves.BRAINPOOLP256r1, CUSTOM], ids=["matched", "unmatched"])
async def test_a_chip_with_explicit_pace_parameters_is_read_with_the_can(curve: Any) -> None:
    files = card_files(CARD)
    files[int(Ef.CARD_ACCESS)] = card_access(curve)
    chip = EmrtdChip(files, CARD.bac_key(), CARD.can)

    async def transmit(raw: bytes) -> bytes:
        return chip.process(raw)

    assert CARD.can is not None
    result = await read_identity(
        transmit, PaceKey(CARD.can), lambda *_: None, today=date(2026, 1, 1), cscas=None
    )
    assert result.mrz.document_number == "099000123"
    assert result.passive_auth.hashes_valid is True

"""A card pulled at every APDU boundary of the template write keeps its previous object, or none."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pcsc_fixtures import Recorder

from card import transport
from card.personalise import read_sealed_template, write_sealed_template
from card.piv import DEFAULT_MANAGEMENT_KEY, ManagementKeyType, PivSession
from card.virtual.vpcd import Faults

TDES = ManagementKeyType.TDES


def _write(reader: str, data: bytes) -> list[bytes]:
    with transport.connect(reader, timeout=5) as conn:
        rec = Recorder(conn)
        session = PivSession(conn)
        write_sealed_template(session, DEFAULT_MANAGEMENT_KEY, data, TDES)
        return rec.sent


def _read(make, image: Path, extended: bool) -> bytes | None:  # type: ignore[no-untyped-def]
    card = make(image=image, extended=extended)
    try:
        with transport.connect(card.reader_name, timeout=5) as conn:
            return read_sealed_template(PivSession(conn))
    finally:
        card.remove()


@pytest.mark.parametrize(
    ("extended", "has_previous"), [(False, True), (True, False)], ids=["chained-previous", "extended-absent"]
)
def test_pull_at_every_apdu_boundary(virtual_card_factory, tmp_path: Path, extended: bool, has_previous: bool) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "card.json"
    previous = secrets.token_bytes(1200) if has_previous else None
    new = secrets.token_bytes(1500)
    card = virtual_card_factory(image=image, extended=extended)
    if previous is not None:
        _write(card.reader_name, previous)
    # dry run on a copy of the image to count the APDUs of the write sequence
    probe_image = tmp_path / "probe.json"
    probe_image.write_bytes(image.read_bytes())
    card.remove()
    probe = virtual_card_factory(image=probe_image, extended=extended)
    apdus = _write(probe.reader_name, new)
    probe.remove()
    k = len(apdus)
    assert k == (1 + 2 + (6 if not extended else 1))  # SELECT, 2x GENERAL AUTHENTICATE, PUT DATA (chain)

    for n in range(k):
        pulled = virtual_card_factory(image=image, extended=extended, faults=Faults(drop_after=n))
        with pytest.raises(transport.ConnectionLostError):
            _write(pulled.reader_name, new)
        pulled.remove()
        assert _read(virtual_card_factory, image, extended) == previous, f"pulled after {n} APDUs"

    # and with no fault the same sequence does write the new object
    final = virtual_card_factory(image=image, extended=extended)
    _write(final.reader_name, new)
    final.remove()
    assert _read(virtual_card_factory, image, extended) == new

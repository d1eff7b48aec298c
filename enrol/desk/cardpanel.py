"""What the card panel shows: each reader, and whether its card is absent, blank, ready (personalised without a
template), enrolled, or unknown (unreadable, or not one of ours). Reads only; writes nothing to any card."""

from __future__ import annotations

from card import transport
from card.personalise import CardState
from card.piv import PivSession
from enrol.cardside import CardNotUsable, inspect_card
from enrol.desk.app import ReaderState

PROBE_TIMEOUT_S = 0.3  # the panel polls: a reader without a card must answer at once


def reader_states() -> list[ReaderState]:
    out: list[ReaderState] = []
    for name in transport.list_readers():
        try:
            with transport.connect(name, timeout=PROBE_TIMEOUT_S) as conn:
                identity = inspect_card(PivSession(conn), replace=True)
        except transport.NoCardError:
            out.append(ReaderState(name, "absent"))
            continue
        except CardNotUsable:
            out.append(ReaderState(name, "enrolled"))
            continue
        except Exception:  # a card that is not ours, or broken: shown as such, never fatal for the panel
            out.append(ReaderState(name, "unknown"))
            continue
        if identity.state is not CardState.PERSONALISED:
            out.append(ReaderState(name, "blank"))
        else:
            out.append(ReaderState(name, "enrolled" if identity.enrolled else "ready"))
    return out

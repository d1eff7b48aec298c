"""The virtual card's "EEPROM": a JSON file written atomically (temp file + fsync + rename).

A write is all-or-nothing: a card "pulled" during a write keeps its previous image. The file holds a
private key
and the default keys in clear: this is a test card, never a real credential store.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MGMT_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")
DEFAULT_MGMT_ALG = 0x03  # 3DES, as shipped PIV cards
DEFAULT_PIN = b"123456"
DEFAULT_PUK = b"12345678"
PIN_TRIES = 3
FORMAT = "cardbound-virtual-piv/1"


class ImageError(ValueError):
    """The card image file is missing fields or corrupt."""


@dataclass
class CardImage:
    path: Path
    mgmt_alg: int = DEFAULT_MGMT_ALG
    mgmt_key: bytes = DEFAULT_MGMT_KEY
    pin: bytes = DEFAULT_PIN
    puk: bytes = DEFAULT_PUK
    pin_tries: int = PIN_TRIES
    puk_tries: int = PIN_TRIES
    objects: dict[int, bytes] = field(default_factory=dict)
    keys: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # slot -> (alg, PKCS#8 DER)
    # fsync makes a write survive power loss, as EEPROM does; the rename alone already makes it atomic for
    # a card pulled (process killed), so benchmarks may turn fsync off to see the transport cost alone
    durable: bool = True

    @classmethod
    def load_or_create(cls, path: Path) -> CardImage:
        path = Path(path)
        if not path.exists():
            image = cls(path)
            image.save()
            return image
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> CardImage:
        try:
            raw: dict[str, Any] = json.loads(Path(path).read_text())
            if raw.get("format") != FORMAT:
                raise ImageError(f"{path}: not a virtual card image")
            return cls(
                path=Path(path),
                mgmt_alg=int(raw["mgmt_alg"]),
                mgmt_key=bytes.fromhex(raw["mgmt_key"]),
                pin=bytes.fromhex(raw["pin"]),
                puk=bytes.fromhex(raw["puk"]),
                pin_tries=int(raw["pin_tries"]),
                puk_tries=int(raw["puk_tries"]),
                objects={int(k, 16): bytes.fromhex(v) for k, v in raw["objects"].items()},
                keys={int(k, 16): (int(v["alg"]), bytes.fromhex(v["pkcs8"])) for k, v in raw["keys"].items()},
            )
        except (OSError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{path}: unreadable card image ({exc})") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "mgmt_alg": self.mgmt_alg,
            "mgmt_key": self.mgmt_key.hex(),
            "pin": self.pin.hex(),
            "puk": self.puk.hex(),
            "pin_tries": self.pin_tries,
            "puk_tries": self.puk_tries,
            "objects": {f"{k:X}": v.hex() for k, v in sorted(self.objects.items())},
            "keys": {f"{k:02X}": {"alg": a, "pkcs8": d.hex()} for k, (a, d) in sorted(self.keys.items())},
        }

    def save(self) -> None:
        """Atomic replace: the old image stays valid until the rename, which the fsyncs make durable."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.to_json(), fh, indent=1)
                fh.flush()
                if self.durable:
                    os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if not self.durable:
            return
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

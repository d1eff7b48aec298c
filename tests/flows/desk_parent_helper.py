"""A desk process for tests/flows/test_parent_memory.py: the desk web app (`enrol.desk.create_app` with the real
services: keystore, audit log, sandboxed worker, PC/SC) serving one enrolment through Flask's test client in *this*
process, then waiting on stdin so the test can read this process's memory.

    python desk_parent_helper.py HOME READER PHOTO   -> prints one JSON line {"status": ..., "text": ...}

`cardbound desk serve` runs the same app behind Werkzeug's server; a browser and WebAuthn are not needed to show
what the enrolment leaves in the process (the operator logs in with the tests' software security key)."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "desk"))

from desk_helpers import ORIGIN, form_post, make_desk  # noqa: E402
from PIL import Image  # noqa: E402

from biometric.isolation import FaceWorker  # noqa: E402
from card.keystore import KeyStore  # noqa: E402
from enrol.desk import Role  # noqa: E402


def main() -> None:
    home, reader, photo = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    image = Image.open(photo).convert("RGB")
    near = image.crop((0, 50, image.width, 50 + image.width * 3 // 4)).resize((640, 480))
    buf = io.BytesIO()
    near.save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    with FaceWorker() as worker:
        desk = make_desk(home, worker=worker, keys=KeyStore.open(home / "keys"))
        desk.register("olga", Role.OPERATOR)
        c, _ = desk.login("olga")
        s, _ = c.application.extensions["desk"]["sessions"].get(c.get_cookie("desk_session").value)
        for _ in range(3):
            r = c.post("/api/frame/take", data=jpeg, content_type="image/jpeg",
                       headers={"Origin": ORIGIN, "X-CSRF-Token": s.csrf})
            assert r.status_code == 200, r.get_data(as_text=True)
        until = (date.today() + timedelta(days=30)).isoformat()
        r = form_post(c, "/enrol", {"nrn": "85073003328", "category": "regular", "valid_until": until,
                                    "reader": reader})
        text = re.sub(r"<[^>]+>", " ", r.get_data(as_text=True))
        print(json.dumps({"status": r.status_code, "text": " ".join(text.split())[-400:]}), flush=True)
        sys.stdin.read()  # held here, worker still running, until the test has read this process's memory
        desk.log.close()


if __name__ == "__main__":
    main()

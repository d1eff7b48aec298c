"""The desk's live quality hint round trip: a 640x480 JPEG frame POSTed to a running desk over loopback HTTP →
raw body read → sandboxed worker's desk quality gate → JSON hint back (what the browser does a few times a second,
minus its canvas encoding and the DOM update; the browser test prints that end-to-end figure too).

Run: `bash scripts/bench.sh benchmarks/test_bench_desk.py -s`. Target: median <= 300 ms on the project's 2-core
machine.
"""

from __future__ import annotations

import http.client
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "desk"))

from desk_helpers import ORIGIN, make_desk  # noqa: E402

from biometric.isolation import FaceWorker  # noqa: E402
from enrol.desk import Role  # noqa: E402

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces" / "portraits" / "face_recognition"


def _jpeg(img: Image.Image) -> bytes:
    b = io.BytesIO()
    img.save(b, "JPEG", quality=90)
    return b.getvalue()


@pytest.fixture(scope="module")
def desk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, str]]:
    with FaceWorker() as worker:
        d = make_desk(tmp_path_factory.mktemp("bench-desk") / "home", worker=worker)
        sessions = d.app.extensions["desk"]["sessions"]
        s = sessions.login(sessions.new("en"), "olga", Role.OPERATOR, "en")  # a logged-in operator's session
        server = make_server("127.0.0.1", 0, d.app, threaded=True)
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            yield server.server_port, s.sid, s.csrf
        finally:
            server.shutdown()
            d.log.close()


def _frames() -> dict[str, bytes]:
    photo = Image.open(FACES / "obama" / "obama.jpg").convert("RGB")
    near = photo.crop((0, 50, photo.width, 50 + photo.width * 3 // 4)).resize((640, 480))
    far = Image.new("RGB", (640, 480))
    small = photo.copy()
    small.thumbnail((640, 480))
    far.paste(small, ((640 - small.width) // 2, 0))
    return {"good": _jpeg(near), "too_small": _jpeg(far)}


@pytest.mark.parametrize("kind", ["good", "too_small"])
def test_bench_hint_round_trip(benchmark: Any, desk_server: tuple[int, str, str], kind: str) -> None:
    port, sid, csrf = desk_server
    frame = _frames()[kind]
    headers = {"Content-Type": "image/jpeg", "Origin": ORIGIN, "X-CSRF-Token": csrf, "Cookie": f"desk_session={sid}"}

    def one() -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", "/api/frame/hint", body=frame, headers=headers)
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert resp.status == 200, body
            return body  # type: ignore[no-any-return]
        finally:
            conn.close()

    got = benchmark.pedantic(one, rounds=40, iterations=1, warmup_rounds=3)
    assert got["ok"] is (kind == "good")
    print(f"\n{kind} frame ({len(frame)} B JPEG 640x480): hint {got['codes'] or ['OK']}")

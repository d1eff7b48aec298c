"""The desk in a real headless Chromium (Debian's chromium + chromedriver): the first admin bootstraps from the
command line and registers an operator; the operator logs in with a security key (DevTools virtual authenticator),
sees live quality hints from a fake camera fed with a real portrait, captures, enrols a virtual card through pcscd;
a gate verification of that card then succeeds. The desk server runs under strace the whole time: the last test
shows that no file but the audit log, the operator register and the card certificate was written.

One server, one browser, one card for the module; the tests run in order and build on each other. Screenshots of
the main screens are saved under the module's temporary directory (printed with -s).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import browser
import pytest
from flows.test_keeps_nothing import TRACED, file_writes
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from audit import AuditLog
from audit.atrest import scan
from biometric.quality import MESSAGES, QualityReason
from card import transport
from card.keystore import KeyStore
from card.personalise import personalise
from card.piv import PivSession
from card.register import CardRegister
from card.values import CardGuid
from card.virtual.harness import VirtualCardProcess
from cardbound.home import Home
from enrol.desk.i18n import t

pytestmark = pytest.mark.skipif(not browser.available() or shutil.which("strace") is None,
                                reason="chromium, chromium-driver and strace are installed by scripts/setup.sh")

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
STRACE = shutil.which("strace") or "strace"
NRN = "85.07.30-033.28"  # a well-formed, fictitious national register number


@dataclass
class Station:
    home: Path
    out: Path  # screenshots
    trace: Path
    origin: str
    driver: WebDriver
    server: subprocess.Popen[bytes]
    server_log: Path
    card: VirtualCardProcess
    state: dict[str, Any] = field(default_factory=dict)

    def shot(self, name: str) -> Path:
        path = self.out / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def wait(self, timeout: float = 20.0) -> WebDriverWait[WebDriver]:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CARDBOUND, "--home", str(self.home), *args], input=stdin, capture_output=True,
                              text=True, timeout=timeout)

    def stop_server(self) -> list[int]:
        return _stop_traced(self.server)


def _stop_traced(strace: subprocess.Popen[bytes]) -> list[int]:
    """Stop the desk that runs under `strace` (our child, by PID). The signal goes to the desk itself: strace
    interrupted would detach and leave the desk running. strace exits once its tracee has."""
    if strace.poll() is not None:
        return []
    try:
        desk_pids = [int(p) for p in Path(f"/proc/{strace.pid}/task/{strace.pid}/children").read_text().split()]
    except OSError:
        desk_pids = []
    for pid in desk_pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # a clean shutdown: the audit log is closed, the worker stopped
    try:
        strace.wait(30)
    except subprocess.TimeoutExpired:
        for pid in desk_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        strace.kill()
        strace.wait(10)
    return desk_pids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def station(pcscd: Any, faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    base = tmp_path_factory.mktemp("desk-browser")
    home = Home(base / "home").ensure()
    ks = KeyStore.init(home.keystore)
    ks.issue_station("desk-1")
    fd = os.open(home.keystore / "holder-ref.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    ks.export_desk("desk-1", home.desk_bundle)  # the desk holds only its bundle, the gate only its own
    ks.export_gate("gate-1", home.gate_bundle)
    out = base / "screenshots"
    out.mkdir()
    video = browser.write_y4m(faces_dir / "portraits/face_recognition/obama/obama.jpg", base / "camera.y4m")
    card = VirtualCardProcess(base / "card.json", reader=0)
    card.insert()
    register = CardRegister.beside(home.keystore)

    def issue(guid: bytes, public_key: Any) -> Any:  # card issuance at the key officer (CA), in the register
        cert = ks.issue_card_auth_certificate(guid, public_key)
        register.record_issued(CardGuid(guid), cert.serial_number, cert.not_valid_after_utc)
        return cert

    with transport.connect(card.reader_name, timeout=5) as conn:
        personalise(PivSession(conn), issue, ks.management_key_for)
    port = _free_port()
    trace = base / "desk.trace"
    log = base / "desk.log"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with open(log, "wb") as logf:
        server = subprocess.Popen(
            [STRACE, "-f", "-ff", "-qq", "-e", f"trace={TRACED}", "-o", str(trace),
             CARDBOUND, "--home", str(home.root), "desk", "serve", "--port", str(port), "--station", "desk-1"],
            stdout=logf, stderr=logf, env=env, cwd=base)
    driver = None
    try:
        deadline = time.monotonic() + 120
        while b"desk ready" not in log.read_bytes():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "desk did not start"
            time.sleep(0.2)
        driver = browser.chromium(video)
        browser.add_authenticator(driver)
        st = Station(home.root, out, trace, f"http://localhost:{port}", driver, server, log, card)
        print(f"\ndesk screenshots: {out}")
        yield st
    finally:
        if driver is not None:
            driver.quit()
        _stop_traced(server)
        card.stop()
        video.unlink(missing_ok=True)  # the fake camera file holds a face: gone with the test


def _register_with_link(st: Station, link: str) -> None:
    d = st.driver
    d.get(link)
    d.find_element(By.ID, "register-button").click()
    st.wait().until(lambda _: d.find_element(By.ID, "status").get_attribute("class") in ("ok", "bad"))
    assert d.find_element(By.ID, "status").get_attribute("class") == "ok", d.find_element(By.ID, "status").text


def _login(st: Station, operator: str, screenshot: str | None = None) -> None:
    d = st.driver
    d.get(st.origin + "/login")
    d.find_element(By.ID, "operator").send_keys(operator)
    if screenshot:
        st.shot(screenshot)
    d.find_element(By.ID, "login-button").click()

    def settled(_: object) -> bool:
        try:
            return "/login" not in d.current_url or d.find_element(By.ID, "status").get_attribute("class") == "bad"
        except WebDriverException as exc:
            # The page navigated between finding the element and reading it: ChromeDriver says so as an "unknown
            # error" (seen once in a fresh-Debian run), not as a stale element. Look again.
            if "does not belong to the document" in str(exc):
                return False
            raise

    st.wait().until(settled)
    assert "/login" not in d.current_url, d.find_element(By.ID, "status").text


def test_bootstrap_admin_registers_an_operator_who_logs_in(station: Station) -> None:
    st, d = station, station.driver
    r = st.cli("desk", "bootstrap-admin", "--operator", "root", "--origin", st.origin)
    assert r.returncode == 0, r.stderr
    st.state["links"] = [r.stdout.strip()]
    _register_with_link(st, r.stdout.strip())
    _login(st, "root", screenshot="01-login")
    assert d.current_url.endswith("/admin")
    d.get(st.origin + "/audit")  # the read-only audit page: this station's log, verified with its own key
    assert d.find_element(By.ID, "audit-result").get_attribute("class") == "ok"
    assert "signed checkpoints verified" in d.find_element(By.ID, "audit-summary").text
    d.get(st.origin + "/admin")
    d.find_element(By.ID, "invite-operator").send_keys("olga")
    Select(d.find_element(By.ID, "invite-role")).select_by_value("operator")
    Select(d.find_element(By.ID, "invite-lang")).select_by_value("fr")
    d.find_element(By.ID, "invite-button").click()
    link = st.wait().until(lambda _: d.find_element(By.ID, "invite-link").text)
    assert link.startswith(st.origin + "/register/")
    st.state["links"].append(link)
    d.find_element(By.ID, "logout").click()
    st.wait().until(lambda _: "/login" in d.current_url)
    _register_with_link(st, link)
    assert "olga" in d.find_element(By.ID, "register-for").text
    _login(st, "olga")
    assert d.current_url.endswith("/desk")
    assert "Guichet d'enrôlement" in d.page_source  # olga works in French, as the admin chose


def test_operator_sees_hints_captures_and_enrols_a_card_that_a_gate_accepts(station: Station,
                                                                             faces_dir: Path) -> None:
    st, d = station, station.driver
    hint = d.find_element(By.ID, "hint")
    # the fake camera shows the person far away, then close up: the desk says so, in French
    st.wait(30).until(lambda _: "FACE_TOO_SMALL" in (hint.get_attribute("data-codes") or ""))
    assert MESSAGES[QualityReason.FACE_TOO_SMALL]["fr"] in hint.text
    st.shot("02-capture-hint")
    st.wait(30).until(lambda _: "ok" in (hint.get_attribute("class") or ""))
    d.find_element(By.ID, "take").click()
    taken = d.find_element(By.ID, "taken")
    st.wait(60).until(lambda _: taken.get_attribute("data-held") == "3")
    # the card was issued at the key officer (personalised, no template yet): the panel shows it ready
    st.wait(20).until(lambda _: any(li.get_attribute("data-state") == "ready"
                                    for li in d.find_elements(By.CSS_SELECTOR, "#readers li")))
    d.find_element(By.ID, "nrn").send_keys(NRN)
    Select(d.find_element(By.ID, "category")).select_by_value("regular")
    st.wait().until(lambda _: d.find_element(By.ID, "enrol").is_enabled())
    st.shot("03-card-panel")
    times = [float(x) for x in d.execute_script("return window.deskHintMs;")]
    st.state["hint_ms"] = times
    d.find_element(By.ID, "enrol").click()
    result = st.wait(60).until(lambda _: d.find_element(By.ID, "result"))
    st.shot("04-result")
    assert result.get_attribute("data-ok") == "true", result.text
    assert "Enrôlement réussi" in result.text
    assert times, "the hint loop measured nothing"
    print(f"\nhint round trip in the browser (frame sent -> hint shown): median {statistics.median(times):.0f} ms "
          f"over {len(times)} frames")
    # the result page does not poll the card: the gate below has the reader to itself
    live = faces_dir / "portraits/face_recognition/obama/obama2.jpg"
    gate = st.cli("verify", "--once", "--reader", "0", "--photo", str(live))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    impostor = st.cli("verify", "--once", "--reader", "0", "--photo",
                      str(faces_dir / "portraits/face_recognition/biden/biden.jpg"))
    assert impostor.returncode != 0  # the same card with someone else's face is refused
    d.get(st.origin + "/desk")  # the card panel now reads the card as enrolled
    st.wait(20).until(lambda _: any(li.get_attribute("data-state") == "enrolled"
                                    for li in d.find_elements(By.CSS_SELECTOR, "#readers li")))
    # enrolling the same card again without "Replace": a clear refusal in her language, the card unchanged
    st.wait(30).until(lambda _: "ok" in (d.find_element(By.ID, "hint").get_attribute("class") or ""))
    d.find_element(By.ID, "take").click()
    st.wait(60).until(lambda _: d.find_element(By.ID, "taken").get_attribute("data-held") == "3")
    d.find_element(By.ID, "nrn").send_keys(NRN)
    st.wait().until(lambda _: d.find_element(By.ID, "enrol").is_enabled())
    d.find_element(By.ID, "enrol").click()
    refused = st.wait(60).until(lambda _: d.find_element(By.ID, "result"))
    assert refused.get_attribute("data-ok") == "false"
    assert t("fail_ALREADY_ENROLLED", "fr") in refused.text, refused.text  # "cochez « Remplacer »"
    st.shot("05-refused")
    d.find_element(By.ID, "logout").click()
    st.wait().until(lambda _: "/login" in d.current_url)


def test_the_whole_web_enrolment_wrote_no_frame_to_disk(station: Station) -> None:
    st = station
    pids = st.stop_server()  # the trace is complete once the server has exited
    assert pids and not any(Path(f"/proc/{pid}").exists() for pid in pids), "the desk outlived the test"
    writes = file_writes(st.trace)
    home = st.home
    assert any(p.endswith("audit.sqlite3") for _, p in writes), "the watch saw no audit write at all"
    assert any("operators.json" in p for _, p in writes)

    def allowed(path: str) -> bool:
        p = Path(path)
        if path in ("/dev/null", "/dev/tty") or path.startswith("/dev/pts/"):
            return True
        if p in (home, home / "audit", home / "desk") or home / "audit" in p.parents:
            return True  # the audit log
        if p in (home / "config", home / "config" / "node-id"):
            return True  # the station's audit node id, chosen on first use
        if p.parent == home / "desk" and p.name.startswith("operators.json"):
            return True  # the operator register (ids, public keys, counters), its lock and atomic temp file
        keys = home / "keys"
        if p.parent == keys and p.name.lstrip(".").startswith("audit-"):
            return True  # the audit checkpoint key
        if p.parent == keys and p.name.startswith("register.jsonl"):
            return True  # the issued-card register (card id, GUID, certificate serial, validity; no biometric)
        return keys / "cards" in p.parents or p == keys / "cards"  # the card's public certificate

    unexpected = sorted({(c, p) for c, p in writes if not allowed(p)})
    assert unexpected == [], f"the desk wrote outside the audit log and the register: {unexpected}"
    for part in st.trace.parent.glob(st.trace.name + ".*"):
        part.unlink()
    assert scan([home]) == []  # nothing in the station home looks like an image or a template
    # the national register number was pseudonymised: it is nowhere in the home or the server's output
    digits = NRN.replace(".", "").replace("-", "")
    for path in [*home.rglob("*"), st.server_log]:
        if path.is_file():
            blob = path.read_bytes()
            assert digits.encode() not in blob and NRN.encode() not in blob, path
    server_output = st.server_log.read_text()
    for link in st.state["links"]:  # the registration tokens are secrets: not in the desk's output either
        assert link.rsplit("/", 1)[1] not in server_output
    with AuditLog.open_station(home, node_id=Home(home).node_id) as log:
        types = [e.type for e in log.entries()]
    for kind in ("operator.invited", "operator.registered", "operator.login", "operator.logout",
                 "enrolment.completed", "card.written", "gate.decision"):
        assert kind in types, kind

"""Real-browser plumbing for the desk tests: Debian's Chromium driven by Selenium through Debian's chromedriver
(no download), a DevTools virtual authenticator, and a fake camera fed from a Y4M file written at test time from
a real portrait (into the test's temporary directory, never the repository; removed by the caller)."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.virtual_authenticator import Protocol, Transport, VirtualAuthenticatorOptions

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
W, H = 640, 480


def available() -> bool:
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


def _fit(img: Image.Image) -> Image.Image:
    """The whole photo scaled into 640x480 on black: the face is small (the quality gate says FACE_TOO_SMALL)."""
    im = img.copy()
    im.thumbnail((W, H))
    canvas = Image.new("RGB", (W, H))
    canvas.paste(im, ((W - im.width) // 2, (H - im.height) // 2))
    return canvas


def _close_up(img: Image.Image, top: int = 50) -> Image.Image:
    """A 4:3 band across the full width starting at `top`, scaled to 640x480: the face fills the frame."""
    w = img.width
    return img.crop((0, top, w, top + w * 3 // 4)).resize((W, H), Image.Resampling.LANCZOS)


def write_y4m(photo: Path, out: Path, *, far_frames: int = 15, near_frames: int = 25, fps: int = 10) -> Path:
    """A looping fake webcam: the person far away (too small), then close up. YUV 4:2:0, as Chromium expects."""
    img = Image.open(photo).convert("RGB")
    frames = [_fit(img)] * far_frames + [_close_up(img)] * near_frames
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        planes = []
        for frame in {id(fr): fr for fr in frames}.values():
            y, cb, cr = frame.convert("YCbCr").split()
            planes.append((id(frame), y.tobytes() + cb.resize((W // 2, H // 2)).tobytes()
                           + cr.resize((W // 2, H // 2)).tobytes()))
        data = dict(planes)
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(data[id(frame)])
    return out


def chromium(video: Path) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--window-size=1400,1000", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-video-capture={video}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    return driver


def add_authenticator(driver: webdriver.Chrome) -> None:
    driver.add_virtual_authenticator(VirtualAuthenticatorOptions(
        protocol=Protocol.CTAP2, transport=Transport.INTERNAL, has_resident_key=True,
        has_user_verification=True, is_user_consenting=True, is_user_verified=True))

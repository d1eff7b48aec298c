"""The worker pipe's raw payloads (the 512-byte reference at the gate, the template at enrolment, encoded frames
at the desk) are written from and read into the caller's buffer: no transient `bytes` copy of them exists in the
parent. `Connection.send_bytes` builds `header + buf` for payloads up to 16 KiB and `recv_bytes_into` reads
through `bytes` chunks; tracemalloc sees those copies, and sees none with `send_buffer` / `recv_buffer_into`."""

from __future__ import annotations

import multiprocessing
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from biometric.isolation import recv_buffer_into, send_buffer


@pytest.fixture
def pipe() -> Iterator[tuple[multiprocessing.connection.Connection, multiprocessing.connection.Connection]]:
    a, b = multiprocessing.get_context("spawn").Pipe(duplex=True)  # what SandboxedWorker uses
    yield a, b
    a.close()
    b.close()


def _transient_peak(fn: Callable[[], object]) -> int:
    """Bytes allocated by `fn` above what was allocated before it (freed or not)."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def test_same_framing_as_the_connection_methods(pipe) -> None:  # type: ignore[no-untyped-def]
    a, b = pipe
    for size in (1, 512, 16384, 16385, 100_000):
        data = bytearray(os.urandom(size))
        t = threading.Thread(target=send_buffer, args=(a, data))
        t.start()
        assert b.recv_bytes() == data
        t.join()
        t = threading.Thread(target=a.send_bytes, args=(data,))
        t.start()
        into = bytearray(size)
        assert recv_buffer_into(b, into) == size and into == data
        t.join()
    a.send_bytes(b"1234")
    with pytest.raises(multiprocessing.BufferTooShort):
        recv_buffer_into(b, bytearray(3))  # nothing of it is read; the caller drops the connection
    c, d = multiprocessing.get_context("spawn").Pipe(duplex=True)
    c.close()
    with pytest.raises(EOFError):
        recv_buffer_into(d, bytearray(3))
    d.close()


def test_no_transient_copy_of_the_payload(pipe) -> None:  # type: ignore[no-untyped-def]
    """A payload of 8 KiB (under the 16 KiB above which `send_bytes` stops concatenating): the stock methods
    allocate at least its size again; ours allocate a few small objects (views, the 4-byte length), whatever the
    payload size."""
    a, b = pipe
    reference = bytearray(os.urandom(8192))
    into = bytearray(8192)
    stock_send = _transient_peak(lambda: a.send_bytes(reference))
    stock_recv = _transient_peak(lambda: b.recv_bytes_into(into))
    ours_send = _transient_peak(lambda: send_buffer(a, reference))
    ours_recv = _transient_peak(lambda: recv_buffer_into(b, into))
    assert into == reference
    assert stock_send >= 8192 and stock_recv >= 8192  # the copies this module avoids (the test can fail)
    assert ours_send < 2048 and ours_recv < 2048, (ours_send, ours_recv)

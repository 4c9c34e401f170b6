"""The moment a restored peer's answer lands in the exchange directory (inotify, via ctypes).

A restore command in the foreground returns only when the restored process has exited and its
container is torn down; ember's invocation is answered while the instance lives on. To compare
like with like, restore_peers.py stops the clock when the answer file is written (an inotify
event on the host directory; the checkpointed program writes it with one write and closes it)
and records the command's exit beside it. Blocking on the inotify fd costs the two-CPU host no
polling.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import time
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name

_libc = ctypes.CDLL(None, use_errno=True)


class AnswerWatch:
    """inotify on one directory: wait() returns when `name` there holds what `complete`
    accepts, or when `pipe` (the restore command's output) reaches EOF, or at the deadline."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        mask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
        if _libc.inotify_add_watch(self.fd, str(directory).encode(), mask) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {directory}: {os.strerror(err)}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def drain(self) -> None:
        """Drops pending events (the previous sample's)."""
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def _names(self) -> set[str]:
        names = set()
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return names
        off = 0
        while off + EVENT_HEADER.size <= len(data):
            _, _, _, length = EVENT_HEADER.unpack_from(data, off)
            off += EVENT_HEADER.size
            names.add(data[off:off + length].rstrip(b"\0").decode(errors="replace"))
            off += length
        return names

    def wait(self, name: str, complete, pipe, deadline: float) -> tuple[int | None, bytes]:
        """(perf_counter_ns when the file was complete or None, what the pipe said so far)."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        pipe_fd = pipe.fileno()
        poller.register(pipe_fd, select.POLLIN | select.POLLHUP)
        output, path = b"", self.directory / name
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return None, output
            for fd, _ in poller.poll(left_ms):
                if fd == self.fd:
                    if name in self._names() and complete(path):
                        return time.perf_counter_ns(), output
                else:
                    chunk = os.read(pipe_fd, 65536)
                    output += chunk
                    if not chunk:  # the command and everything holding its output are gone
                        return (time.perf_counter_ns() if complete(path) else None), output

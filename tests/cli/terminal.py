"""``nefeature-cli`` in a pseudo-terminal, driven the way a person types.

``Terminal`` starts the shell on a pty (40 x 120), sends keys and waits,
boundedly, for text to appear in what the shell prints; each ``expect``
looks only at output that came after the previous match, so a prompt seen
earlier never satisfies a later wait.  Like a terminal, it answers the
shell's cursor position requests.  The process is a direct child, stopped by its PID.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROWS, COLUMNS = 40, 120
#: prompt_toolkit asks where the cursor is and, unanswered, waits a second per prompt.
CURSOR_POSITION_REQUEST = b"\x1b[6n"


class Terminal:
    def __init__(self, arguments: list[str], home: Path, prefix: tuple[str, ...] = ()) -> None:
        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = dict(os.environ, TERM="xterm", HOME=str(home), COLUMNS=str(COLUMNS),
                   LINES=str(ROWS))
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "nefeature_cli", *arguments],
            stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True)
        os.close(terminal)
        self.controller = controller
        self.output = b""
        self.mark = 0  # where the next expect starts looking

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.controller], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.controller, 65536)
        except OSError:  # the shell exited and the pty closed
            return False
        for _ in range(chunk.count(CURSOR_POSITION_REQUEST)):  # as a terminal does
            os.write(self.controller, b"\x1b[1;1R")
        self.output += chunk
        return bool(chunk)

    def expect(self, text: str | bytes, timeout: float = 30) -> None:
        wanted = text.encode() if isinstance(text, str) else text
        deadline = time.monotonic() + timeout
        while True:
            found = self.output.find(wanted, self.mark)
            if found >= 0:
                self.mark = found + len(wanted)
                return
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"did not see {wanted!r}; last output:\n{self.text()[-3000:]}"
            if not self._read(min(remaining, 0.5)) and self.process.poll() is not None:
                raise AssertionError(f"the shell exited ({self.process.returncode}) before "
                                     f"{wanted!r}:\n{self.text()[-3000:]}")

    def drain(self, seconds: float = 0.3) -> None:
        """Read what the shell prints during ``seconds`` (nothing is expected)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self._read(end - time.monotonic()):
            pass

    def send(self, keys: str) -> None:
        os.write(self.controller, keys.encode())

    def line(self, text: str, then: str | None = None, timeout: float = 30) -> None:
        """Type a line and press Enter; wait for ``then`` (by default the next prompt
        character, ']' or '>')."""
        self.send(text + "\r")
        self.expect(text.encode()[-20:] if text else b"\r")
        if then is not None:
            self.expect(then, timeout)

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        self.drain(0.1)
        return self.process.wait(max(0.0, deadline - time.monotonic()))

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        os.close(self.controller)

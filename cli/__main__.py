"""The ``nefeature-cli`` command: the VRP shell, interactive or batch.

Batch: ``-c COMMAND`` (repeatable), a script file, or standard input when
it is not a terminal; the first error stops the run and names the line.
Interactive: prompt_toolkit with Tab completion, ``?`` help at any point
(the prompt and the line come back after it), Ctrl+C to clear the line,
Ctrl+Z for ``return``, history in ``~/.nefeature_cli_history``, VRP's
questions before leaving with uncommitted edits and before ``save``, and
output longer than the screen paged with ``---- More ----`` (``screen-length
0 temporary`` turns paging off).

Nothing a library raises reaches the terminal as Python text: connection
failures are said in SSH's words, and a device that goes away mid-session
gets a message, three attempts to reconnect, then the exit status 3.

Exit status: 0 done; 1 a command failed, or a script left edits uncommitted;
2 the device could not be reached or refused the login; 3 the connection
was lost and could not be made again.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import socket
import sys
import time
from pathlib import Path

EXIT_ERROR, EXIT_CONNECT, EXIT_LOST = 1, 2, 3
RECONNECT_ATTEMPTS = 3
RECONNECT_PAUSE = 1.0  # seconds between two attempts
MORE = "  ---- More ----"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nefeature-cli", description="VRP-style shell over NETCONF")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=830)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", help="asked for when neither this nor a file is given")
    parser.add_argument("--password-file")
    parser.add_argument("--sysname", help="the name in the prompt (default: the device's)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to connect")
    parser.add_argument("-c", dest="commands", action="append", default=[], metavar="COMMAND")
    parser.add_argument("script", nargs="?", help="a file of commands ('-' for standard input)")
    return parser


class ConnectError(Exception):
    """The device could not be reached or refused the login; the message says which."""


def connect(args: argparse.Namespace, password: str | None):
    """An ncclient session, or ConnectError in the words of an SSH client."""
    import ncclient.transport.session
    from ncclient import manager
    from ncclient.transport.errors import AuthenticationError, SSHError, TransportError

    ncclient.transport.session.TICK = 0.001  # else every command waits 100 ms
    where = f"{args.host} port {args.port}"
    try:
        return manager.connect(host=args.host, port=args.port, username=args.user,
                               password=password, hostkey_verify=False,
                               look_for_keys=password is None, allow_agent=False,
                               timeout=args.timeout)
    except AuthenticationError:
        raise ConnectError(f"Error: Authentication failed for user {args.user} "
                           f"({where}).") from None
    except (SSHError, TransportError, OSError, EOFError):
        raise ConnectError(_socket_failure(args) or f"Error: The SSH session to {where} could "
                           "not be set up (is it a NETCONF server?).") from None


def _socket_failure(args: argparse.Namespace) -> str | None:
    """Why a TCP connection fails, in ssh's words (ncclient keeps only 'could not open
    socket'); None if it does not."""
    where = f"{args.host} port {args.port}"
    try:
        socket.create_connection((args.host, args.port), timeout=args.timeout).close()
    except socket.timeout:
        return f"Error: Connection to {where} timed out."
    except ConnectionRefusedError:
        return f"Error: Failed to connect to {where}: connection refused."
    except OSError as error:
        return f"Error: Failed to connect to {where}: {(error.strerror or 'unreachable').lower()}."
    return None


def password_of(args: argparse.Namespace) -> str | None:
    if args.password is not None:
        return args.password
    if args.password_file:
        return Path(args.password_file).read_text().strip()
    if sys.stdin.isatty():  # as ssh does; empty: try keys instead
        try:
            return getpass.getpass(f"{args.user}@{args.host}'s password: ") or None
        except (EOFError, KeyboardInterrupt):
            print()
            raise ConnectError("Error: No password was given.") from None
    return None


def print_error(shell, error, out) -> None:
    """VRP's way: a caret under the offending word, then the message."""
    if error.column is not None:
        print(" " * (len(shell.prompt()) + error.column) + "^", file=out)
    print(error.message, file=out)


def lost_message(args: argparse.Namespace) -> str:
    return f"Error: The connection to the device {args.host} port {args.port} was lost."


def run_batch(shell, lines: list[str], out=sys.stdout, args=None) -> int:
    from nefeature_cli.shell import CliError, DeviceLost, Exit

    status = 0
    for number, line in enumerate(lines, start=1):
        if line.strip():
            print(f"{shell.prompt()}{line.rstrip()}", file=out)
        try:
            result = shell.execute(line)
        except Exit:
            break
        except CliError as error:
            print_error(shell, error, out)
            print(f"nefeature-cli: line {number}: {line.strip()}", file=sys.stderr)
            status = EXIT_ERROR
            break
        except DeviceLost:
            print(lost_message(args) if args else "Error: The connection to the device was lost.",
                  file=out)
            print(f"nefeature-cli: line {number}: {line.strip()}", file=sys.stderr)
            return EXIT_LOST
        if result:
            print(result, file=out)
    pending = shell.pending
    try:
        for message in shell.close():
            print(message, file=out)
    except (CliError, DeviceLost):
        return status or EXIT_LOST
    return status or (EXIT_ERROR if pending else 0)


def page(text: str, rows: int, out=sys.stdout) -> None:
    """Print ``text``, a screen at a time: Space for the next screen, Enter for the next
    line, anything else stops (VRP's ---- More ----)."""
    lines = text.split("\n")
    if rows <= 0 or len(lines) <= rows:
        print(text, file=out)
        return
    shown, step = 0, rows
    while shown < len(lines):
        chunk = lines[shown:shown + step]
        print("\n".join(chunk), file=out)
        shown += len(chunk)
        if shown >= len(lines):
            return
        key = read_key(lambda: (out.write(MORE), out.flush()))
        out.write("\r" + " " * len(MORE) + "\r")
        out.flush()
        if key == " ":
            step = rows
        elif key in ("\r", "\n"):
            step = 1
        else:
            return


def read_key(show_prompt) -> str:
    """One key from the terminal, without echo or line editing; the terminal is raw before
    the prompt shows, so a key pressed at once is not lost."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        show_prompt()
        return os.read(fd, 1).decode(errors="replace")
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def ask_on_terminal(question: str, options: list[str]) -> str | None:
    """VRP's questions: asked again until answered; Ctrl+C or end of input: None."""
    initials = {option[0].lower() for option in options}
    while True:
        try:
            answer = input(question + " ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return None
        if answer in options or (answer[:1].lower() in initials and len(options) <= 3):
            return answer


def run_interactive(shell, args, reconnect) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.application import run_in_terminal
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    from nefeature_cli.shell import CliError, DeviceLost, Exit

    class VrpCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            partial = "" if not text or text[-1].isspace() else text.split()[-1]
            try:
                options = shell.candidates(text)
            except Exception:  # completion must never break the prompt
                return
            for word, description, keyword in options:
                if keyword:
                    yield Completion(word, start_position=-len(partial), display_meta=description)

    keys = KeyBindings()

    @keys.add("?")
    def _(event):  # VRP: '?' shows help at once, then the prompt and the line again
        text = event.app.current_buffer.document.text_before_cursor
        prompt = shell.prompt()

        def show():
            print(f"{prompt}{text}?")
            try:
                print(shell.help(text))
            except CliError as error:
                print_error(shell, error, sys.stdout)
            except DeviceLost:
                print(lost_message(args))

        run_in_terminal(show)

    @keys.add("c-z")
    def _(event):
        event.app.exit(result="return")

    session = PromptSession(history=FileHistory(str(Path.home() / ".nefeature_cli_history")),
                            completer=VrpCompleter(), key_bindings=keys,
                            complete_while_typing=False)  # Tab completes, as on VRP
    while True:
        try:
            line = session.prompt(shell.prompt())
        except KeyboardInterrupt:  # Ctrl+C: a fresh line, as on VRP
            continue
        except EOFError:
            line = None
        try:
            if line is None:
                raise Exit()
            result = shell.execute(line)
        except Exit:
            for message in _closing(shell):
                print(message)
            return 0
        except CliError as error:
            print_error(shell, error, sys.stdout)
            continue
        except DeviceLost:
            print(lost_message(args))
            shell = reconnect()
            if shell is None:
                return EXIT_LOST
            continue
        if result:
            rows = shell.screen_length
            if rows is None:
                rows = shutil.get_terminal_size().lines - 1
            page(result, rows)


def _closing(shell) -> list[str]:
    from nefeature_cli.shell import CliError, DeviceLost

    try:
        return shell.close()
    except (CliError, DeviceLost):
        return []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from nefeature_cli.shell import DeviceLost, NetconfBackend, Shell

    interactive = not args.commands and not args.script and sys.stdin.isatty()
    try:
        password = password_of(args)
        manager = connect(args, password)
    except ConnectError as error:
        print(error, file=sys.stderr)
        return EXIT_CONNECT
    sessions = [manager]

    def new_shell(current_manager):
        return Shell(NetconfBackend(current_manager), sysname=args.sysname,
                     ask=ask_on_terminal if interactive else None)

    def reconnect():
        for _attempt in range(RECONNECT_ATTEMPTS):
            time.sleep(RECONNECT_PAUSE)
            try:
                fresh = connect(args, password)
                shell = new_shell(fresh)
            except (ConnectError, DeviceLost):
                continue
            sessions.append(fresh)
            print(f"Info: Reconnected to {args.host} port {args.port}; the uncommitted "
                  "configurations of the lost session were discarded by the device.")
            return shell
        print(f"Error: The device {args.host} port {args.port} cannot be reached; "
              "the session ends.")
        return None

    try:
        try:
            shell = new_shell(manager)
        except DeviceLost:
            print(lost_message(args), file=sys.stderr)
            return EXIT_LOST
        if args.commands:
            return run_batch(shell, args.commands, args=args)
        if args.script:
            text = sys.stdin.read() if args.script == "-" else Path(args.script).read_text()
            return run_batch(shell, text.splitlines(), args=args)
        if not interactive:
            return run_batch(shell, sys.stdin.read().splitlines(), args=args)
        return run_interactive(shell, args, reconnect)
    finally:
        for each in sessions:
            try:
                each.close_session()
            except Exception:  # the device may be gone: nothing left to close
                pass


if __name__ == "__main__":
    sys.exit(main())

"""The ``nefeature-cli`` command: the VRP shell, interactive or batch.

Batch: ``-c COMMAND`` (repeatable), a script file, or standard input when
it is not a terminal; the first error stops the run with a non-zero exit
status and names the line.  Interactive: prompt_toolkit with Tab
completion, ``?`` help at any point, Ctrl+Z for ``return`` and history in
``~/.nefeature_cli_history``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nefeature-cli", description="VRP-style shell over NETCONF")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=830)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password")
    parser.add_argument("--password-file")
    parser.add_argument("--sysname", default="HUAWEI", help="the name in the prompt")
    parser.add_argument("-c", dest="commands", action="append", default=[], metavar="COMMAND")
    parser.add_argument("script", nargs="?", help="a file of commands ('-' for standard input)")
    return parser


def connect(args: argparse.Namespace):
    import ncclient.transport.session
    from ncclient import manager

    ncclient.transport.session.TICK = 0.001  # else every command waits 100 ms (tooling.md 1.5)
    password = args.password
    if args.password_file:
        password = Path(args.password_file).read_text().strip()
    return manager.connect(host=args.host, port=args.port, username=args.user, password=password,
                           hostkey_verify=False, look_for_keys=password is None,
                           allow_agent=False, timeout=30)


def print_error(shell, error, out) -> None:
    """VRP's way: a caret under the offending word, then the message."""
    if error.column is not None:
        print(" " * (len(shell.prompt()) + error.column) + "^", file=out)
    print(error.message, file=out)


def run_batch(shell, lines: list[str], out=sys.stdout) -> int:
    from nefeature_cli.shell import CliError, Exit

    for number, line in enumerate(lines, start=1):
        if line.strip():
            print(f"{shell.prompt()}{line.rstrip()}", file=out)
        try:
            result = shell.execute(line)
        except Exit:
            return 0
        except CliError as error:
            print_error(shell, error, out)
            print(f"nefeature-cli: line {number}: {line.strip()}", file=sys.stderr)
            return 1
        except Exception as error:  # a lost session, a bug: say so, stop
            print(f"Error: {error}", file=out)
            print(f"nefeature-cli: line {number}: {line.strip()}", file=sys.stderr)
            return 1
        if result:
            print(result, file=out)
    return 0


def run_interactive(shell) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    from nefeature_cli.shell import CliError, Exit

    class VrpCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            partial = "" if not text or text[-1].isspace() else text.split()[-1]
            for word, description in shell.candidates(text):
                if not word.startswith("<"):
                    yield Completion(word, start_position=-len(partial), display_meta=description)

    keys = KeyBindings()

    @keys.add("?")
    def _(event):  # VRP: '?' shows help at once and keeps the line
        buffer = event.app.current_buffer
        try:
            print(f"\n{shell.help(buffer.text)}")
        except CliError as error:
            print(f"\n{error.message}")

    @keys.add("c-z")
    def _(event):
        event.app.exit(result="return")

    session = PromptSession(history=FileHistory(str(Path.home() / ".nefeature_cli_history")),
                            completer=VrpCompleter(), key_bindings=keys,
                            complete_while_typing=False)  # Tab completes, as on VRP
    while True:
        try:
            line = session.prompt(shell.prompt())
        except (EOFError, KeyboardInterrupt):
            return 0
        try:
            result = shell.execute(line)
        except Exit:
            return 0
        except CliError as error:
            print_error(shell, error, sys.stdout)
            continue
        if result:
            print(result)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from nefeature_cli.shell import NetconfBackend, Shell

    try:
        manager = connect(args)
    except Exception as error:
        print(f"nefeature-cli: cannot connect to {args.host}:{args.port}: {error}",
              file=sys.stderr)
        return 2

    def ask(question: str, options: list[str]) -> str | None:
        if not sys.stdin.isatty():
            return None
        answer = input(f"{question} [{'/'.join(options)}]: ").strip()
        return answer or None

    shell = Shell(NetconfBackend(manager), sysname=args.sysname, ask=ask)
    try:
        if args.commands:
            return run_batch(shell, args.commands)
        if args.script:
            text = sys.stdin.read() if args.script == "-" else Path(args.script).read_text()
            return run_batch(shell, text.splitlines())
        if not sys.stdin.isatty():
            return run_batch(shell, sys.stdin.read().splitlines())
        return run_interactive(shell)
    finally:
        try:
            manager.close_session()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())

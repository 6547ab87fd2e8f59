"""Command syntax as VRP writes it, matched with abbreviations, help and carets.

A command is declared in the manual's own notation::

    vrrp vrid <vrid:1-255> preempt-mode timer delay <delay:0-10800>
    lease <day:0-999> [ <hour:0-23> [ <minute:0-59> ] ]
    dhcp server { enable | disable }

Keywords match any unambiguous prefix (``disp cur``); ``<name:type>`` is a
parameter (an integer range, ``ipv4``, ``mask``, ``mac``, ``word``,
``text`` for the rest of the line, ``ifname`` for an interface name that
may be written as one word or as type and number); ``[ ]`` is optional and
``{ a | b }`` a choice.  Matching returns the parameters and the keywords
taken; failing returns the position where input stopped making sense, so
the shell can put its caret under it, and why (unrecognized, incomplete,
wrong parameter).  The same structure answers ``?`` and Tab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

INTERFACE_TYPES = ("Vlanif", "GigabitEthernet", "Ethernet", "Eth-Trunk", "LoopBack",
                   "XGigabitEthernet", "10GE", "100GE", "MEth", "NULL")


# --- tokens ---


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character position in the line, for the caret


def tokenize(line: str) -> list[Token]:
    """Split on blanks; "Vlanif 100" becomes one token "Vlanif100"."""
    tokens = [Token(m.group(), m.start()) for m in re.finditer(r"\S+", line)]
    joined: list[Token] = []
    for token in tokens:
        if joined and _interface_type(joined[-1].text) and re.match(r"\d", token.text):
            joined[-1] = Token(joined[-1].text + token.text, joined[-1].start)
        else:
            joined.append(token)
    return joined


def _interface_type(text: str) -> str | None:
    for name in INTERFACE_TYPES:
        if text.lower() == name.lower():
            return name
    return None


# --- parameter types ---


class ParamError(ValueError):
    pass


def _convert(kind: str, text: str):
    if re.fullmatch(r"\d+-\d+", kind):
        low, high = map(int, kind.split("-"))
        if not text.isdigit() or not low <= int(text) <= high:
            raise ParamError(f"the value must be an integer from {low} to {high}")
        return int(text)
    if kind == "ipv4":
        try:
            return str(IPv4Address(text))
        except ValueError:
            raise ParamError("the value must be an IPv4 address") from None
    if kind == "mask":  # 255.255.255.0 or 24
        try:
            if text.isdigit() and 0 <= int(text) <= 32:
                return str(IPv4Network(f"0.0.0.0/{text}").netmask)
            return str(IPv4Network(f"0.0.0.0/{text}").netmask)
        except ValueError:
            raise ParamError("the value must be a mask (255.255.255.0) or a length (24)") from None
    if kind == "mac":  # H-H-H (VRP) or xx:xx:xx:xx:xx:xx
        digits = text.replace("-", "").replace(":", "").replace(".", "").lower()
        if not re.fullmatch(r"[0-9a-f]{12}", digits):
            raise ParamError("the value must be a MAC address in H-H-H form")
        return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    if kind == "hex":
        if not re.fullmatch(r"([0-9a-fA-F]{2})+", text):
            raise ParamError("the value must be hex digits, two per byte")
        return text.lower()
    if kind == "ifname":
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9/._:\-]*", text):
            raise ParamError("the value must be an interface name, such as Vlanif100")
        base = re.match(r"[A-Za-z\-]+", text).group()
        known = _interface_type(base)
        return known + text[len(base):] if known else text
    return text  # word


def describe(kind: str) -> str:
    if re.fullmatch(r"\d+-\d+", kind):
        return f"INTEGER<{kind}>"
    return {"ipv4": "IP_ADDR<X.X.X.X>", "mask": "IP_MASK<X.X.X.X> or INTEGER<0-32>",
            "mac": "MAC_ADDR<H-H-H>", "hex": "STRING<hex>", "ifname": "Interface name",
            "text": "STRING<1-242>", "word": "STRING"}.get(kind, kind)


# --- the pattern language ---


@dataclass
class Keyword:
    word: str


@dataclass
class Param:
    name: str
    kind: str


@dataclass
class Optional:
    body: list


@dataclass
class Choice:
    options: list[list]


def parse_pattern(text: str) -> list:
    items = re.findall(r"<[^>]+>|\[|\]|\{|\}|\||[^\s\[\]{}|<>]+", text)
    position = 0

    def sequence(stop: set[str]) -> list:
        nonlocal position
        result = []
        while position < len(items) and items[position] not in stop:
            item = items[position]
            position += 1
            if item == "[":
                result.append(Optional(sequence({"]"})))
                position += 1
            elif item == "{":
                options = [sequence({"|", "}"})]
                while items[position] == "|":
                    position += 1
                    options.append(sequence({"|", "}"}))
                position += 1
                result.append(Choice(options))
            elif item.startswith("<"):
                name, _, kind = item[1:-1].partition(":")
                result.append(Param(name, kind or "word"))
            else:
                result.append(Keyword(item))
        return result

    return sequence(set())


@dataclass
class Match:
    values: dict = field(default_factory=dict)
    keywords: list = field(default_factory=list)


@dataclass
class Failure:
    position: int  # index of the token where matching stopped
    reason: str  # unrecognized | incomplete | wrong-parameter
    detail: str = ""


def _keyword_matches(word: str, text: str) -> bool:
    return word.lower().startswith(text.lower()) and len(text) > 0


def match(pattern: list, tokens: list[Token]) -> list[tuple[int, Match]] | Failure:
    """All ways the pattern consumes a prefix of ``tokens``: (tokens used, match)."""
    best = Failure(0, "incomplete")

    def walk(items: list, index: int, state: Match) -> list[tuple[int, Match]]:
        nonlocal best
        if not items:
            return [(index, state)]
        item, rest = items[0], items[1:]
        if isinstance(item, Optional):
            return walk(item.body + rest, index, state) + walk(rest, index, state)
        if isinstance(item, Choice):
            return [r for option in item.options for r in walk(option + rest, index, state)]
        if index >= len(tokens):
            if best.position <= index:
                best = Failure(index, "incomplete")
            return []
        token = tokens[index].text
        if isinstance(item, Keyword):
            if _keyword_matches(item.word, token):
                return walk(rest, index + 1, Match(state.values, state.keywords + [item.word]))
            if best.position <= index:
                best = Failure(index, "unrecognized")
            return []
        if item.kind == "text":
            value = " ".join(t.text for t in tokens[index:])
            return walk(rest, len(tokens), Match({**state.values, item.name: value},
                                                 state.keywords))
        try:
            value = _convert(item.kind, token)
        except ParamError as error:
            if best.position < index or (best.position == index and best.reason != "wrong-parameter"):
                best = Failure(index, "wrong-parameter", str(error))
            return []
        return walk(rest, index + 1, Match({**state.values, item.name: value}, state.keywords))

    results = walk(pattern, 0, Match())
    complete = [(used, m) for used, m in results if used == len(tokens)]
    if complete:
        return complete
    if results and best.position < len(tokens) and best.reason == "incomplete":
        longest = max(used for used, _ in results)
        return Failure(longest, "unrecognized")
    return best


def next_items(pattern: list, tokens: list[Token]) -> list[Keyword | Param]:
    """What may come after ``tokens`` (for ? and Tab)."""
    found: list = []

    def walk(items: list, index: int) -> None:
        if not items:
            return
        item, rest = items[0], items[1:]
        if isinstance(item, Optional):
            walk(item.body + rest, index)
            walk(rest, index)
            return
        if isinstance(item, Choice):
            for option in item.options:
                walk(option + rest, index)
            return
        if index == len(tokens):
            found.append(item)
            return
        token = tokens[index].text
        if isinstance(item, Keyword):
            if _keyword_matches(item.word, token):
                walk(rest, index + 1)
            return
        if item.kind == "text":
            return
        try:
            _convert(item.kind, token)
        except ParamError:
            return
        walk(rest, index + 1)

    walk(pattern, 0)
    return found


def ends_here(pattern: list, tokens: list[Token]) -> bool:
    result = match(pattern, tokens)
    return not isinstance(result, Failure)

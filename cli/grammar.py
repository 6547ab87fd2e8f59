"""Command syntax as VRP writes it, matched with abbreviations, help and carets.

A command is declared in the manual's own notation::

    vrrp vrid <vrid:1-255> preempt-mode timer delay <delay:0-10800>
    lease <day:0-999> [ <hour:0-23> [ <minute:0-59> ] ]
    dhcp server { enable | disable }

Keywords match any unambiguous prefix (``disp cur``); a prefix that
starts two keywords possible at that point is ambiguous, as on VRP.
``<name:kind>`` is a parameter: ``kind`` says how the CLI writes it (an
integer, ``ipv4``, ``mask`` as 255.255.255.0 or 24, ``mac`` as H-H-H,
``word``, ``text`` for the rest of the line, ``ifname`` for an interface
name written as one word or as type and number, or a fixed range such as
``0-512`` for settings outside the model).  A parameter bound to a YANG
leaf (``Param.data_type``, set by ``nefeature_cli.commands``) is checked
against that leaf's type as it is typed, and ``?`` shows the model's range.
``[ ]`` is optional and ``{ a | b }`` a choice.  Matching returns the
parameters and the keywords taken; failing returns the position where
input stopped making sense, so the shell can put its caret under it, and
why (unrecognized, incomplete, wrong parameter, ambiguous).  The same
structure answers ``?`` and Tab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from nefeature_cli import model

REST_KINDS = ("text", "ipv4s", "vlans")  # parameters that take the rest of the line
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


def vlan_list(text: str) -> list[int]:
    """'100 200 to 205' as VLAN IDs (VRP's list of IDs and 'to' ranges)."""
    words = text.split()
    values: list[int] = []
    index = 0
    while index < len(words):
        if not words[index].isdigit():
            raise ParamError("VLANs are listed as IDs and 'first to last' ranges")
        start = int(words[index])
        if index + 2 < len(words) and words[index + 1].lower() == "to":
            if not words[index + 2].isdigit() or int(words[index + 2]) < start:
                raise ParamError("a VLAN range ends at or after its start")
            values.extend(range(start, int(words[index + 2]) + 1))
            index += 3
        else:
            values.append(start)
            index += 1
    return values


def _convert(kind: str, text: str):
    if kind == "text":
        return text
    if kind == "ipv4s":
        return [_convert("ipv4", word) for word in text.split()]
    if kind == "vlans":
        return vlan_list(text)
    if kind == "int":
        if not text.isdigit():
            raise ParamError("the value must be an integer")
        return int(text)
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


def convert(param: Param, text: str):
    """The parameter's value from its text: the CLI's form, then the model's type."""
    value = _convert(param.kind, text)
    if param.data_type is not None:
        for each in value if isinstance(value, list) else [value]:
            scaled = int(each * param.scale + 1e-9) if isinstance(each, int) else each
            if not model.accepts(param.data_type, scaled):
                raise ParamError(model.error_message(param.data_type)
                                 or "the value is not allowed")
    return value


def describe(param: Param) -> str:
    if param.data_type is not None and param.kind not in ("mask", "mac"):
        return model.describe(param.data_type, param.scale)
    kind = param.kind
    if re.fullmatch(r"\d+-\d+", kind):
        return f"INTEGER<{kind}>"
    return {"ipv4": "IP_ADDR<X.X.X.X>", "mask": "IP_MASK<X.X.X.X> or INTEGER<0-32>",
            "mac": "MAC_ADDR<H-H-H>", "hex": "STRING<hex>", "ifname": "Interface name",
            "text": "STRING", "word": "STRING", "int": "INTEGER"}.get(kind, kind)


# --- the pattern language ---


@dataclass
class Keyword:
    word: str
    help: str = ""


@dataclass
class Param:
    name: str
    kind: str
    data_type: Any = None  # the YANG type of the leaf it sets, when it sets one
    scale: float = 1  # CLI value * scale = model value (seconds -> centiseconds: 100)
    help: str = ""


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
            if best.position < index or (best.position == index and best.reason == "incomplete"):
                best = Failure(index, "unrecognized")  # a wrong parameter here says more
            return []
        if item.kind in REST_KINDS:
            try:
                value = convert(item, " ".join(t.text for t in tokens[index:]))
            except ParamError as error:
                if best.position <= index:
                    best = Failure(index, "wrong-parameter", str(error))
                return []
            return walk(rest, len(tokens), Match({**state.values, item.name: value},
                                                 state.keywords))
        try:
            value = convert(item, token)
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
        if item.kind in REST_KINDS:
            return
        try:
            convert(item, token)
        except ParamError:
            return
        walk(rest, index + 1)

    walk(pattern, 0)
    return found


def ends_here(pattern: list, tokens: list[Token]) -> bool:
    result = match(pattern, tokens)
    return not isinstance(result, Failure)


def ambiguous_position(patterns: list[list], tokens: list[Token]) -> int | None:
    """The first token that starts several keywords possible there, and nothing else.

    VRP rejects such a prefix even when only one of the keywords would lead to
    a complete command (``re`` for ``return`` and ``reset``).
    """
    for index, token in enumerate(tokens):
        words: set[str] = set()
        parameter = False
        for pattern in patterns:
            for item in next_items(pattern, tokens[:index]):
                if isinstance(item, Keyword):
                    words.add(item.word.lower())
                elif item.kind in REST_KINDS:
                    parameter = True
                else:
                    try:
                        convert(item, token.text)
                        parameter = True
                    except ParamError:
                        pass
        text = token.text.lower()
        if parameter or text in words:
            continue
        if len([word for word in words if word.startswith(text)]) > 1:
            return index
    return None

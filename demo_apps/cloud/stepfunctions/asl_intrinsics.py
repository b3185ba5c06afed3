"""The Amazon States Language's intrinsic functions, each as AWS's developer guide defines it.

Arrays: ``States.Array``, ``ArrayPartition``, ``ArrayContains``, ``ArrayRange`` (inclusive, at
most 1,000 items, non-integers rounded), ``ArrayGetItem``, ``ArrayLength``, ``ArrayUnique``.
Encoding: ``Base64Encode``, ``Base64Decode`` (at most 10,000 characters). ``Hash`` (MD5, SHA-1,
SHA-256, SHA-384, SHA-512 of at most 10,000 characters, hex). JSON: ``StringToJson``,
``JsonToString``, ``JsonMerge`` (shallow only: its third argument must be false, as AWS requires).
Math: ``MathRandom`` (an integer from start up to, not including, end; a seed makes it
repeatable), ``MathAdd`` (integers). Strings: ``Format`` (each unescaped ``{}`` replaced by the
next argument), ``StringSplit`` (on any of the delimiter's characters, empty pieces dropped).
``UUID``. A call that cannot be made (wrong arguments, limits) fails with
``States.IntrinsicFailure``, the error AWS names for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import uuid
from collections.abc import Callable
from typing import Any, Final

MAX_ENCODED_CHARS: Final = 10_000
MAX_RANGE_ITEMS: Final = 1_000
HASHES: Final = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


class IntrinsicFailure(ValueError):
    """States.IntrinsicFailure: an intrinsic function given what it cannot work with."""

    error = "States.IntrinsicFailure"


class Literal(str):
    """A quoted string argument, keeping its source so Format can tell ``\\{`` from ``{``."""

    source: str

    def __new__(cls, source: str) -> Literal:
        made = super().__new__(cls, unescape(source))
        made.source = source
        return made


def unescape(source: str) -> str:
    """``\\'``, ``\\{``, ``\\}`` and ``\\\\`` as their characters; any other backslash is an error."""
    out, index = [], 0
    while index < len(source):
        char = source[index]
        if char == "\\":
            following = source[index + 1 : index + 2]
            if following not in ("'", "{", "}", "\\"):
                raise IntrinsicFailure(f"an open escape backslash in {source!r}")
            out.append(following)
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise IntrinsicFailure(message)


def _format(template: Any, *values: Any) -> str:
    _expect(isinstance(template, str), "States.Format: the first argument must be a string")
    source = template.source if isinstance(template, Literal) else template.replace("{}", "\0")
    pieces = source.split("{}") if isinstance(template, Literal) else source.split("\0")
    _expect(len(pieces) - 1 == len(values), f"States.Format: {len(pieces) - 1} {{}} for {len(values)} arguments")
    out = unescape(pieces[0]) if isinstance(template, Literal) else pieces[0]
    for value, piece in zip(values, pieces[1:], strict=True):
        _expect(not isinstance(value, (dict, list)), "States.Format: an argument is an object or an array")
        out += value if isinstance(value, str) else json.dumps(value)
        out += unescape(piece) if isinstance(template, Literal) else piece
    return out


def _partition(items: Any, size: Any) -> list[Any]:
    _expect(isinstance(items, list), "States.ArrayPartition: the first argument must be an array")
    _expect(_is_integer(size) and size > 0, "States.ArrayPartition: the chunk size must be a positive integer")
    return [items[i : i + size] for i in range(0, len(items), size)]


def _range(start: Any, end: Any, step: Any) -> list[int]:
    _expect(all(_is_number(v) for v in (start, end, step)), "States.ArrayRange: every argument must be a number")
    first, last, stride = round(start), round(end), round(step)
    _expect(stride != 0, "States.ArrayRange: the step must not be zero")
    count = max(0, (last - first) // stride + 1)
    _expect(count <= MAX_RANGE_ITEMS, f"States.ArrayRange: {count} items, over {MAX_RANGE_ITEMS}")
    return [first + i * stride for i in range(count)]


def _get_item(items: Any, index: Any) -> Any:
    _expect(isinstance(items, list), "States.ArrayGetItem: the first argument must be an array")
    _expect(_is_integer(index) and 0 <= index < len(items), f"States.ArrayGetItem: no item at index {index!r}")
    return items[index]


def _unique(items: Any) -> list[Any]:
    _expect(isinstance(items, list), "States.ArrayUnique: the argument must be an array")
    seen: set[str] = set()  # each item's JSON: linear in the array, whatever its items are
    kept = []
    for item in items:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _text_argument(name: str, value: Any) -> str:
    _expect(isinstance(value, str), f"States.{name}: the argument must be a string")
    _expect(len(value) <= MAX_ENCODED_CHARS, f"States.{name}: over {MAX_ENCODED_CHARS} characters")
    return str(value)


def _base64_decode(value: Any) -> str:
    try:
        return base64.b64decode(_text_argument("Base64Decode", value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise IntrinsicFailure(f"States.Base64Decode: not base64 of UTF-8 text ({exc})") from None


def _hash(value: Any, algorithm: Any) -> str:
    _expect(algorithm in HASHES, f"States.Hash: the algorithm must be one of {', '.join(HASHES)}")
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    _expect(len(text) <= MAX_ENCODED_CHARS, f"States.Hash: over {MAX_ENCODED_CHARS} characters")
    return hashlib.new(HASHES[algorithm], text.encode()).hexdigest()


def _merge(first: Any, second: Any, deep: Any) -> dict[str, Any]:
    _expect(isinstance(first, dict) and isinstance(second, dict), "States.JsonMerge: both must be objects")
    _expect(deep is False, "States.JsonMerge: only the shallow merge is supported (the third argument is false)")
    return {**first, **second}


def _string_to_json(text: Any) -> Any:
    _expect(isinstance(text, str), "States.StringToJson: the argument must be a string")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise IntrinsicFailure(f"States.StringToJson: not JSON ({exc})") from None


def _random(start: Any, end: Any, seed: Any = None) -> int:
    _expect(_is_integer(start) and _is_integer(end) and start < end, "States.MathRandom: integers, start < end")
    _expect(seed is None or _is_integer(seed), "States.MathRandom: the seed must be an integer")
    return random.Random(seed).randrange(start, end) if seed is not None else random.randrange(start, end)


def _add(first: Any, second: Any) -> int:
    _expect(_is_integer(first) and _is_integer(second), "States.MathAdd: both arguments must be integers")
    return int(first + second)


def _split(text: Any, delimiters: Any) -> list[str]:
    _expect(isinstance(text, str) and isinstance(delimiters, str), "States.StringSplit: two strings")
    pieces: list[str] = []
    current: list[str] = []
    for char in text:
        if char in delimiters:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return [piece for piece in pieces if piece]


def _contains(items: Any, value: Any) -> bool:
    _expect(isinstance(items, list), "States.ArrayContains: the first argument must be an array")
    return value in items


def _length(items: Any) -> int:
    _expect(isinstance(items, list), "States.ArrayLength: the argument must be an array")
    return len(items)


FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    "States.Format": _format,
    "States.StringToJson": _string_to_json,
    "States.JsonToString": lambda value: json.dumps(value, separators=(",", ":")),
    "States.Array": lambda *values: list(values),
    "States.ArrayPartition": _partition,
    "States.ArrayContains": _contains,
    "States.ArrayRange": _range,
    "States.ArrayGetItem": _get_item,
    "States.ArrayLength": _length,
    "States.ArrayUnique": _unique,
    "States.Base64Encode": lambda value: base64.b64encode(_text_argument("Base64Encode", value).encode()).decode(),
    "States.Base64Decode": _base64_decode,
    "States.Hash": _hash,
    "States.JsonMerge": _merge,
    "States.MathRandom": _random,
    "States.MathAdd": _add,
    "States.StringSplit": _split,
    "States.UUID": lambda: str(uuid.uuid4()),
}


def call(name: str, arguments: list[Any]) -> Any:
    """The value of intrinsic `name` on `arguments`; IntrinsicFailure if it cannot be made."""
    function = FUNCTIONS.get(name)
    if function is None:
        raise IntrinsicFailure(f"{name} is not an intrinsic function")
    try:
        return function(*arguments)
    except TypeError:
        raise IntrinsicFailure(f"{name} was given {len(arguments)} arguments, which it does not take") from None

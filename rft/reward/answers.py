"""Finding the final answer in a completion: the answer formats verifiable tasks ask for.

Three formats (``AnswerFormat`` in rft/config.py; docs/verifiable-and-remote.md §A1-A3):

- ``tag``: the text of the LAST ``<answer>…</answer>`` (reasoning-gym's convention and its
  ``extract_answer``: optional whitespace inside the tags is stripped);
- ``boxed``: the content of the LAST ``\\boxed{…}`` with its braces balanced (the maths
  convention math-verify and TRL's accuracy reward read);
- ``hash``: the number after the LAST ``#### `` (GSM8K's own solutions and verl's "strict"
  extraction), commas removed.

``extract`` returns None when the completion has no answer in the format: an unparsable
answer, which the verifiers score 0 and count (``unparsable_share``). Pure string functions:
no model text is ever evaluated here.
"""

from __future__ import annotations

import re

FORMATS = ("tag", "boxed", "hash")
_TAG = re.compile(r"<answer>\s?(.*?)\s?</answer>", re.DOTALL)
_HASH = re.compile(r"####\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_tag(text: str) -> str | None:
    """The stripped text of the last ``<answer>…</answer>``.

    >>> extract_tag("<think>2+2</think> <answer> 4 </answer>")
    '4'
    >>> extract_tag("<answer>1</answer> no, <answer>2</answer>"), extract_tag("4")
    ('2', None)
    """
    found = _TAG.findall(text)
    return found[-1].strip() if found else None


def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{…}`` (nested braces balanced); None when there is
    none or its braces never close.

    >>> extract_boxed(r"so \\boxed{\\frac{1}{2}} and \\boxed{3}")
    '3'
    >>> extract_boxed(r"\\boxed{\\frac{1}{2}}"), extract_boxed(r"\\boxed{1"), extract_boxed("1")
    ('\\\\frac{1}{2}', None, None)
    """
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start:i].strip()
    return None


def extract_hash(text: str) -> str | None:
    """The number after the last ``####``, thousands commas removed (GSM8K).

    >>> extract_hash("3 + 4 = 7\\n#### 1,007"), extract_hash("#### x"), extract_hash("####-2.5")
    ('1007', None, '-2.5')
    """
    found = _HASH.findall(text)
    return found[-1].replace(",", "") if found else None


def extract(text: str, fmt: str) -> str | None:
    """The answer of ``text`` in format ``fmt`` (tag | boxed | hash), None if absent."""
    if fmt == "tag":
        return extract_tag(text)
    if fmt == "boxed":
        return extract_boxed(text)
    if fmt == "hash":
        return extract_hash(text)
    raise ValueError(f"answer format {fmt!r}: choose one of {list(FORMATS)}")


def render(answer: str, fmt: str) -> str:
    """An answer written in format ``fmt``: what an SFT target ends with.

    >>> [render("42", f) for f in FORMATS]
    ['<answer>42</answer>', '\\\\boxed{42}', '#### 42']
    """
    if fmt == "tag":
        return f"<answer>{answer}</answer>"
    if fmt == "boxed":
        return f"\\boxed{{{answer}}}"
    if fmt == "hash":
        return f"#### {answer}"
    raise ValueError(f"answer format {fmt!r}: choose one of {list(FORMATS)}")


INSTRUCTIONS = {
    "tag": "Think step by step if you need to, then give only the final answer inside "
    "<answer> </answer> tags, for example <answer>42</answer>.",
    "boxed": "Think step by step if you need to, then put only the final answer inside "
    "\\boxed{}, for example \\boxed{42}.",
    "hash": 'Think step by step, then write the final answer as a number after "####", for '
    "example #### 42.",
}
"""The default instruction of each format (a verifiable task's ``instruction: null``)."""


def normalize_number(text: str) -> str | None:
    """A canonical string for a plain number (commas, a leading +, a trailing ``.0`` and
    leading zeros dropped; ``-0`` is ``0``), or None if ``text`` is not one.

    >>> [normalize_number(s) for s in ["1,000", "+07", "18.0", "-0", "2.50", "1e3", "x"]]
    ['1000', '7', '18', '0', '2.5', None, None]
    """
    from decimal import Decimal, InvalidOperation

    s = text.strip().replace(",", "")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", s):
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        return None
    if d == 0:
        return "0"
    out = format(d.normalize(), "f")
    return out.rstrip("0").rstrip(".") if "." in out else out

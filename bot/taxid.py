"""Find and validate a company tax ID (税号) in a customer's free text.

Accepted formats, after NFKC normalisation and upper-casing, with spaces/hyphens dropped:

* 18 chars — 统一社会信用代码: 8 digits then 10 of ``0-9A-Z``; the check digit is verified
  with ``stdnum.cn.uscc`` (a wrong check digit, or a letter the code never uses, gives
  ``bad_check_digit`` so the customer is asked to re-check, never silently accepted).
* 15 chars — legacy 税务登记证号: 6-digit region code (first digit 1-8) + 8 chars of the
  组织机构代码 (``0-9A-Z``) + its check char (digit or ``X``).
* 17 chars — legacy 个体户 number: 15-digit old ID card + 2-digit serial (17 digits,
  first digit 1-8).
* 20 chars — legacy 个体户 number: 18-digit ID card (last char digit or ``X``) + 2-digit
  serial (first digit 1-8).

A number may be written in groups ("9111 0108 5513 8508 2Q", "911101-0855…"); groups are
joined only when the joined value has one of the shapes above and no group is itself a
mobile number. Other lengths (11-digit phones, 8-digit dates, ticket numbers like T000123)
never match.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from stdnum.cn import uscc
from stdnum.exceptions import ValidationError

VALID = "valid"
BAD_CHECK_DIGIT = "bad_check_digit"
NOT_FOUND = "not_found"

_USCC_SHAPE = re.compile(r"\d{8}[0-9A-Z]{10}")
_LEGACY_SHAPES = (
    re.compile(r"[1-8]\d{5}[0-9A-Z]{8}[0-9X]"),  # 15: region + organisation code
    re.compile(r"[1-8]\d{16}"),  # 17: 15-digit ID card + serial
    re.compile(r"[1-8]\d{16}[0-9X]\d{2}"),  # 20: 18-digit ID card + serial
)
_MOBILE = re.compile(r"1[3-9]\d{9}")
_SEPARATORS = " \t\u00a0\\-\u2010\u2011\u2012\u2013\u2014\u2212"
_RUN = re.compile(rf"[0-9A-Z]+(?:[{_SEPARATORS}]+[0-9A-Z]+)*")
_TOKEN = re.compile(r"[0-9A-Z]+")
_RANK = {VALID: 0, BAD_CHECK_DIGIT: 1}
_MAX_LEN = 20


@dataclass(frozen=True)
class TaxIdResult:
    """A tax ID found in text: normalised `value` ("" if none) and its `status`."""

    value: str  # normalised candidate ("" if none found)
    status: str  # "valid" | "bad_check_digit" | "not_found"

    @property
    def found(self) -> bool:
        """True when the text held something shaped like a tax ID."""
        return self.status != NOT_FOUND


def normalise(text: str) -> str:
    """NFKC (full-width → ASCII) and upper-case."""
    return unicodedata.normalize("NFKC", text or "").upper()


def classify(value: str) -> str:
    """Status of one already-joined candidate (no separators)."""
    if _USCC_SHAPE.fullmatch(value):
        try:
            uscc.validate(value)
        except ValidationError:
            return BAD_CHECK_DIGIT
        return VALID
    if any(shape.fullmatch(value) for shape in _LEGACY_SHAPES):
        return VALID
    return NOT_FOUND


def _candidates(text: str):
    """(groups, position, value, span) for each joined window of adjacent groups ≤ 20 chars."""
    position = 0
    for run in _RUN.finditer(text):
        tokens = list(_TOKEN.finditer(text, run.start(), run.end()))
        for first in range(len(tokens)):
            joined = ""
            for last in range(first, len(tokens)):
                joined += tokens[last].group()
                if len(joined) > _MAX_LEN or _has_mobile(tokens[first:last + 1]):
                    break
                position += 1
                yield last - first + 1, position, joined, (tokens[first].start(), tokens[last].end())


def _has_mobile(tokens: list[re.Match]) -> bool:
    """True when a joined window of several groups contains an 11-digit mobile number."""
    return len(tokens) > 1 and any(_MOBILE.fullmatch(t.group()) for t in tokens)


def _best(normalised: str) -> tuple[str, str, tuple[int, int]] | None:
    """(value, status, span) of the best candidate: valid first, fewest groups, earliest."""
    best = None
    for size, position, value, span in _candidates(normalised):
        status = classify(value)
        if status != NOT_FOUND:
            key = (_RANK[status], size, position, value, status, span)
            best = key if best is None or key < best else best
    return best[3:] if best else None


def find_tax_id(text: str) -> TaxIdResult:
    """Extract the best tax ID candidate from free text ("我们税号是 9111…，麻烦了")."""
    best = _best(normalise(text))
    return TaxIdResult(best[0], best[1]) if best else TaxIdResult("", NOT_FOUND)


def remove_tax_id(text: str) -> str:
    """The normalised text without the tax ID `find_tax_id` would pick (for matching the rest)."""
    normalised = normalise(text)
    best = _best(normalised)
    if best is None:
        return normalised
    start, end = best[2]
    return f"{normalised[:start]} {normalised[end:]}".strip()


def mask_tax_id(value: str) -> str:
    """For logs: first 4 + *** + last 4 (short values are fully hidden)."""
    if not value:
        return ""
    if len(value) <= 8:
        return "***"
    return f"{value[:4]}***{value[-4:]}"


ATTEMPT_MIN_CHARS = 6  # a run of letters and digits this long, with ATTEMPT_MIN_DIGITS digits, is an attempt
ATTEMPT_MIN_DIGITS = 4  # (a mistyped 统一社会信用代码 is still 15–20 characters; 6/4 leaves room for typos)
_ABOUT_TAX_ID = re.compile("税号|信用代码|纳税人识别号|识别号|税务登记号|TAX ?ID|TAX ?NO", re.I)


_NAMING = re.compile("税号|信用代码|统一社会|纳税人识别号|识别号|我们|我司|我的|公司|这是|是|的|给你|发你|请|好的|好|嗯|对|吧|"
                     "谢谢|麻烦了|麻烦")  # what may stand beside a tax ID sent on its own
_NAMING_WORDS = frozenset({"MY", "TAX", "ID", "NO", "IS", "OK", "THE"})
_LATIN_RUN = re.compile(r"[0-9A-Z-]+")


def only_tax_id(text: str) -> bool:
    """A valid tax ID with nothing but words that name it (税号：9111…, my tax id is 9111…)."""
    if find_tax_id(text).status != VALID:
        return False
    rest = _LATIN_RUN.sub(lambda m: "" if m.group() in _NAMING_WORDS or any(c.isdigit() for c in m.group())
                          else m.group(), normalise(text))
    return not re.sub(r"[\W_]", "", _NAMING.sub("", rest))


def looks_like_tax_id(text: str) -> bool:
    """Whether a message is an attempt at a tax ID (a code-like run, or words about the tax ID), as
    opposed to a question on another topic (SPEC 15: only an attempt is judged as a tax ID)."""
    normalised = normalise(text)
    if _ABOUT_TAX_ID.search(normalised):
        return True
    return any(len(m.group()) >= ATTEMPT_MIN_CHARS and sum(c.isdigit() for c in m.group()) >= ATTEMPT_MIN_DIGITS
               for m in _TOKEN.finditer(normalised))

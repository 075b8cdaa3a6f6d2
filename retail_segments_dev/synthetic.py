"""Deterministic generator of raw files in exactly the format of the UCI Online Retail CSV.

The output imitates the real file's shapes and quirks at roughly its rates (learned from the real
file): ~25% of lines without a customer id, ~1% exact duplicate lines, ~1.7% cancellation lines,
service stock codes, ~0.5% zero prices, a few multi-country customers, descriptions with commas,
quotes, trailing spaces and a pound sign, several descriptions per stock code now and then,
November-peaking seasonality, trading hours 7..20, no Saturdays, a Christmas break, many one-time
buyers and a few wholesale customers with a hundred orders or more.

On top of the random part, a fixed script of customers and invoices guarantees that every
cancellation-matching branch and every quirk appears a few times even in a small fixture (see
``_SCRIPT``): ``SCRIPTED_CUSTOMERS`` of the customers are scripted, the others random. Customer
ids are ``FIRST_CUSTOMER_ID`` onwards, shuffled, so the scripted ones do not stand out.

Design, so that files 100x the real one can be streamed:

* Pass 1 (``_plan``) draws, with one ``numpy.random.Generator``, everything at the grain of a
  customer or an invoice: the catalogue, the customers, and every invoice header (time, customer,
  country, kind, line count). Headers are sorted by time and numbered, so the file is in time
  order with rising invoice numbers, like the real one. This is ~25x smaller than the lines.
* Pass 2 (``iter_raw_chunks``) makes the lines of consecutive header ranges. Line-level draws come
  from a counter-based hash of (seed, stream, invoice, line), so any line can be recomputed on its
  own: a cancellation recomputes the lines of the purchase it refers to, and the output does not
  depend on the chunk size. Same ``(n_customers, seed)`` gives the same lines and the same bytes.

Invoice headers of natural and scripted customers are independent: a scripted customer has only
scripted invoices, so the expected outcome of each scripted case does not depend on the seed.
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zstandard

from retail_segments.ops import inputs

RAW_COLUMNS: list[str] = list(inputs.RAW_COLUMNS)  # the raw file's layout, as the product reads it
FIRST_DAY = np.datetime64("2010-12-01", "D")
LAST_DAY = np.datetime64("2011-12-09", "D")
FIRST_INVOICE_NO = 536365
FIRST_CUSTOMER_ID = 12346
SCRIPT_INSTANCES = 3
SCRIPT_SLOTS = 7
SCRIPTED_CUSTOMERS = SCRIPT_INSTANCES * SCRIPT_SLOTS
MIN_CUSTOMERS = SCRIPTED_CUSTOMERS + 19
REAL_CUSTOMERS = 4_372  # customers with an id in the real file: scale factor 1
DEFAULT_CHUNK_LINES = 1_000_000

# ---------------------------------------------------------------------------------------------
# Shapes learned from the real file
# ---------------------------------------------------------------------------------------------

# invoices per month in the real file (Dec 2010 .. Dec 2011): the seasonality, November peak
_MONTH_INVOICES = {
    (2010, 12): 2025,
    (2011, 1): 1476,
    (2011, 2): 1393,
    (2011, 3): 1983,
    (2011, 4): 1744,
    (2011, 5): 2162,
    (2011, 6): 2012,
    (2011, 7): 1927,
    (2011, 8): 1737,
    (2011, 9): 2327,
    (2011, 10): 2637,
    (2011, 11): 3462,
    (2011, 12): 1015,
}
# weekday factors, Monday first: no Saturdays, quieter Fridays and Sundays
_WEEKDAY_FACTOR = np.array([1.0, 1.05, 1.0, 1.1, 0.8, 0.0, 0.65])
_CHRISTMAS_BREAK = (np.datetime64("2010-12-24", "D"), np.datetime64("2011-01-03", "D"))
# lines per hour of day in the real file, hours 7..20
_HOUR_WEIGHTS = np.array(
    [424, 8909, 34332, 49037, 57674, 78709, 72259, 67471, 77519, 54516, 28509, 7974, 3705, 871],
    dtype=float,
)
_FIRST_HOUR = 7
# customers per country in the real file; "Hong Kong" appears on anonymous lines only
_COUNTRY_CUSTOMERS = {
    "United Kingdom": 3950,
    "Germany": 95,
    "France": 87,
    "Spain": 31,
    "Belgium": 25,
    "Switzerland": 21,
    "Portugal": 19,
    "Italy": 15,
    "Finland": 12,
    "Austria": 11,
    "Norway": 10,
    "Netherlands": 9,
    "Australia": 9,
    "Channel Islands": 9,
    "Denmark": 9,
    "Japan": 8,
    "Cyprus": 8,
    "Sweden": 8,
    "Poland": 6,
    "USA": 4,
    "Unspecified": 4,
    "Canada": 4,
    "Greece": 4,
    "Israel": 4,
    "EIRE": 3,
    "Malta": 2,
    "United Arab Emirates": 2,
    "Bahrain": 2,
    "European Community": 1,
    "Lithuania": 1,
    "Iceland": 1,
    "Lebanon": 1,
    "Czech Republic": 1,
    "Saudi Arabia": 1,
    "Singapore": 1,
    "Brazil": 1,
    "RSA": 1,
    "Hong Kong": 0,
}
COUNTRIES: list[str] = list(_COUNTRY_CUSTOMERS)
_UK = COUNTRIES.index("United Kingdom")
# countries of anonymous invoices
_ANON_COUNTRY_WEIGHTS = {
    "United Kingdom": 0.985,
    "EIRE": 0.005,
    "Hong Kong": 0.003,
    "Unspecified": 0.003,
    "Switzerland": 0.002,
    "France": 0.002,
}
# purchase quantities: the real file's common pack sizes and how often each occurs
_PACKS = np.array(
    [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 25, 36, 48, 72, 96, 100, 144, 200, 288, 480]
)
_PACK_WEIGHTS = np.array(
    [148, 82, 37, 38, 12, 41, 13, 22, 61, 4.3, 5, 24, 5.1, 3.8, 6, 1.9, 1.8, 1.8, 1, 0.5, 0.3, 0.1]
)
_PACK_CDF = np.cumsum(_PACK_WEIGHTS) / _PACK_WEIGHTS.sum()

# service stock codes (letters first), their description and a typical unit price in pounds
SERVICE_CODES: dict[str, tuple[str, float]] = {
    "POST": ("POSTAGE", 18.0),
    "DOT": ("DOTCOM POSTAGE", 11.57),
    "M": ("Manual", 2.55),
    "C2": ("CARRIAGE", 50.0),
    "D": ("Discount", 5.76),
    "BANK CHARGES": ("Bank Charges", 15.0),
    "AMAZONFEE": ("AMAZON FEE", 5575.28),
    "CRUK": ("CRUK Commission", 1.6),
    "PADS": ("PADS TO MATCH ALL CUSHIONS", 0.001),
    "B": ("Adjust bad debt", 11062.06),
    "S": ("SAMPLES", 2.5),
    "m": ("Manual", 2.55),
    "gift_0001_10": ("Dotcomgiftshop Gift Voucher £10.00", 8.51),
    "gift_0001_20": ("Dotcomgiftshop Gift Voucher £20.00", 17.02),
    "gift_0001_30": ("Dotcomgiftshop Gift Voucher £30.00", 25.53),
    "gift_0001_40": ("Dotcomgiftshop Gift Voucher £40.00", 34.04),
    "gift_0001_50": ("Dotcomgiftshop Gift Voucher £50.00", 42.55),
}
_SERVICE_NAMES = list(SERVICE_CODES)
_GIFTS = [name for name in _SERVICE_NAMES if name.startswith("gift_")]
# descriptions of anonymous stock adjustments (zero price, often a negative quantity)
_ADJUSTMENT_NOTES = [
    "check",
    "damaged",
    "damages",
    "?",
    "found",
    "adjustment",
    "sold as set on dotcom",
    "Damaged",
    "thrown away",
    "Unsaleable, destroyed.",
]

# catalogue words
_ADJECTIVES: list[str] = [
    "VINTAGE",
    "RETRO",
    "REGENCY",
    "JUMBO",
    "MINI",
    "SMALL",
    "LARGE",
    "SET/3",
    "SET/6",
    "PACK-OF-12",
    "WOODEN",
    "GLASS",
    "CERAMIC",
    "ENAMEL",
    "PAPER",
    "FELT",
    "KNITTED",
    "HANGING",
    "PAINTED",
    "ANTIQUE",
    "RUSTIC",
    "FRENCH",
    "SWEETHEART",
    "CHILDS",
]
_PATTERNS: list[str] = [
    "RED",
    "WHITE",
    "PINK",
    "BLUE",
    "GREEN",
    "IVORY",
    "CREAM",
    "BLACK",
    "SILVER",
    "GOLD",
    "RETROSPOT",
    "POLKADOT",
    "GINGHAM",
    "PAISLEY",
    "SPACEBOY",
    "DOLLY",
    "GIRL",
    "WOODLAND",
    "CHRISTMAS",
    "HEART",
    "FLORAL",
    "BIRD",
    "STRAWBERRY",
    "SKULL",
    "CIRCUS",
    "VICTORIAN",
    "LOVEBIRD",
    "ROSE",
    "SPOTTY",
    "STRIPE",
    "BAROQUE",
]
_OBJECTS: list[str] = [
    "LUNCH BAG",
    "CAKE TIN",
    "TEA SET",
    "T-LIGHT HOLDER",
    "DOOR SIGN",
    "PHOTO FRAME",
    "CAKE STAND",
    "HOT WATER BOTTLE",
    "ALARM CLOCK",
    "NOTEBOOK",
    "WRAP",
    "BUNTING",
    "LANTERN",
    "MUG",
    "CUSHION COVER",
    "CHOPSTICKS",
    "PURSE",
    "SHOPPING BAG",
    "JAM JAR",
    "PLATE",
    "BOWL",
    "TUMBLER",
    "COAT HANGER",
    "HEART DECORATION",
    "GARLAND",
    "DOORMAT",
    "PARTY BAG",
    "NAPKINS",
    "CANDLE",
    "STORAGE BOX",
    "PICNIC BASKET",
    "CHARLOTTE BAG",
    "EGG CUP",
    "MAGNET",
    "WATER BOTTLE",
    "KEY FOB",
    "TRINKET BOX",
    "PEG BAG",
    "WALL CLOCK",
    "TISSUES",
]
_CODE_SUFFIXES = "ABCDEFGLNPS"

# ---------------------------------------------------------------------------------------------
# Rates of the random part
# ---------------------------------------------------------------------------------------------
_FAVOURITES = 16  # products a customer returns to
_FAVOURITE_SHARE = 0.6  # share of a customer's lines taken from its favourites
_WHOLESALE_PER_CUSTOMER = 1 / 2000  # at least two per file
_MULTI_COUNTRY_SHARE = 0.002
_RETURN_INVOICE_RATE = 0.22  # cancellation invoices per purchase invoice
_ANON_SHOP_LINES_PER_CUSTOMER_LINE = 0.32
_ANON_ADJUST_PER_CUSTOMER = 0.45
_ANON_RETURN_PER_CUSTOMER = 0.04
_ALT_DESCRIPTION_SHARE = 0.3  # lines of a product with two descriptions using the second one
_ZERO_PRICE_CUSTOMER_LINE = 1e-4
_DUPLICATE_RATE = {"purchase": 0.012, "return": 0.002, "anonymous": 0.0005}
_PURCHASE_SERVICES = {  # code -> (probability per purchase invoice UK, non-UK)
    "POST": (0.004, 0.45),
    "M": (0.012, 0.012),
    "C2": (0.005, 0.02),
    "BANK CHARGES": (0.0006, 0.0006),
    "PADS": (0.0002, 0.0002),
    "DOT": (0.0008, 0.0008),
}

# invoice kinds
_PURCHASE, _RETURN, _ANON_SHOP, _ANON_ADJUST, _ANON_RETURN, _SCRIPTED = range(6)
_PREFIXES = np.array(["", "C", "A"], dtype=object)

# line-level hash streams
(
    _S_FAV,
    _S_SLOT,
    _S_PRODUCT,
    _S_QTY,
    _S_ZERO,
    _S_DESC,
    _S_SERVICE,
    _S_RTYPE,
    _S_RLINE,
    _S_RQTY,
    _S_RQTY2,
    _S_DUP,
    _S_PRICE,
    _S_SIGN,
    _S_NOTE,
    _S_CODE,
    _S_OFFSET,
) = range(1, 18)

# ---------------------------------------------------------------------------------------------
# The script: invoices that guarantee each quirk and cancellation branch in every file
# ---------------------------------------------------------------------------------------------
# An invoice: (customer slot or None for anonymous, trading-day offset, "H:MM", prefix, lines,
# second country?). A line: (item, quantity, unit price or None for the catalogue price, flags).
# Items p0/p1/p2 are ordinary products distinct per (instance, slot); the special products are
# "pound", "quote", "comma", "two_desc"; other items are service codes. Flags: "dup" writes the
# line twice (an exact duplicate), "alt" uses the product's second description.
# Expected quantity_canceled (by the reference rules) is written next to each case.
_ScriptLine = tuple[str, int, float | None, str]
_ScriptInvoice = tuple[int | None, int, str, str, list[_ScriptLine], bool]
_SCRIPT: list[_ScriptInvoice] = [
    # slot 0: a return with no earlier purchase (the same stock code is only bought later)
    (0, 0, "10:00", "", [("p0", 6, None, "")], False),
    (0, 1, "11:00", "C", [("p1", -3, None, "")], False),
    (0, 3, "9:30", "", [("p1", 12, None, "")], False),  # p1: 0
    # slot 1: exactly one candidate, large enough (p0: 6) and too small (p1: 5 > 2)
    (1, 0, "10:05", "", [("p0", 12, None, ""), ("p1", 2, None, "")], False),
    (1, 2, "14:00", "C", [("p0", -6, None, ""), ("p1", -5, None, "")], False),
    # slot 2: several candidates; the latest is too small, an earlier one qualifies (p0 day 1: 10);
    # several candidates whose latest qualifies (p1 day 1: 4)
    (2, 0, "11:00", "", [("p0", 24, None, ""), ("p1", 5, None, "")], False),
    (2, 1, "11:00", "", [("p0", 12, None, ""), ("p1", 8, None, "")], False),
    (2, 2, "11:00", "", [("p0", 2, None, "")], False),
    (2, 3, "15:00", "C", [("p0", -10, None, ""), ("p1", -4, None, "")], False),
    # slot 3: several candidates, none large enough (all 0)
    (3, 0, "12:00", "", [("p0", 3, None, "")], False),
    (3, 1, "12:00", "", [("p0", 4, None, "")], False),
    (3, 2, "13:00", "C", [("p0", -8, None, "")], False),
    # slot 4: two returns land on the same line, the later overwrites (p0 day 0: 4, not 7);
    # and with several candidates (p1 day 0: 6, p1 day 1: 0)
    (4, 0, "9:00", "", [("p0", 10, None, ""), ("p1", 10, None, "")], False),
    (4, 1, "9:00", "", [("p1", 2, None, "")], False),
    (4, 1, "16:00", "C", [("p0", -3, None, "")], False),
    (4, 2, "16:00", "C", [("p0", -4, None, ""), ("p1", -5, None, "")], False),
    (4, 3, "16:00", "C", [("p1", -6, None, "")], False),
    # slot 5: a return at the same minute as a purchase is not a candidate (p0: 0); with an
    # earlier purchase too, that one is the only candidate (p1 day 1: 2, p1 day 2: 0)
    (5, 0, "12:00", "", [("p0", 6, None, "")], False),
    (5, 0, "12:00", "C", [("p0", -2, None, "")], False),
    (5, 1, "9:00", "", [("p1", 6, None, "")], False),
    (5, 2, "12:30", "", [("p1", 8, None, "")], False),
    (5, 2, "12:30", "C", [("p1", -2, None, "")], False),
    # slot 6: duplicates removed before matching (p0: 3 on the first copy; p1: 1), a zero price,
    # the special descriptions, service codes bought and returned, a second country
    (
        6,
        0,
        "10:00",
        "",
        [
            ("p0", 5, None, "dup"),
            ("p1", 4, None, ""),
            ("p2", 1, 0.0, ""),
            ("pound", 2, None, ""),
            ("quote", 1, None, ""),
            ("comma", 3, None, ""),
            ("two_desc", 2, None, ""),
            ("POST", 2, None, ""),
            ("C2", 1, None, ""),
            ("M", 1, None, ""),
            ("BANK CHARGES", 1, None, ""),
            ("PADS", 1, None, ""),
            ("DOT", 1, None, ""),
            ("m", 1, None, ""),
        ],
        False,
    ),
    (
        6,
        1,
        "11:00",
        "C",
        [
            ("p0", -3, None, ""),
            ("p1", -1, None, "dup"),
            ("D", -1, None, ""),
            ("CRUK", -1, None, ""),
            ("S", -1, None, ""),
        ],
        False,
    ),
    (6, 2, "10:00", "", [("two_desc", 2, None, "alt"), ("p0", 1, None, "")], True),
    # anonymous: a gift voucher with a pound sign, an Amazon fee return, a duplicated line
    (None, 0, "15:00", "", [("gift_0001_20", 1, None, ""), ("p0", 2, None, "dup")], False),
    (None, 1, "15:30", "C", [("AMAZONFEE", -1, None, "")], False),
]
# the bad-debt adjustment invoices of the real file (once per file, anonymous, "A" prefix)
_BAD_DEBT: list[_ScriptInvoice] = [
    (None, 2, "14:50", "A", [("B", 1, 11062.06, "")], False),
    (None, 2, "14:51", "A", [("B", 1, -11062.06, "")], False),
]
_SCRIPT_BASE_DAYS = (15, 110, 200)  # trading-day index of each script instance
_SCRIPT_COUNTRIES = (("Germany", "France"), ("Cyprus", "Spain"), ("Belgium", "Austria"))
_SPECIAL_PRODUCTS = {
    "pound": ("VINTAGE SIGN £5 OFF", None),
    "quote": ('PHOTO FRAME 7" SINGLE SIZE ', None),
    "comma": ("TRAY, BREAKFAST IN BED", None),
    "two_desc": ("GIN + TONIC DIET METAL SIGN", "GIN AND TONIC DIET METAL SIGN"),
}


# ---------------------------------------------------------------------------------------------
# Counter-based random numbers for line-level draws
# ---------------------------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(seed: int, stream: int, invoice: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) floats that depend only on (seed, stream, invoice, line)."""
    key = np.uint64(((seed * _GOLDEN) ^ (stream << 48) ^ 0x5DEECE66D) & _MASK64)
    x = _mix(np.asarray(invoice, dtype=np.uint64) ^ key)
    x = _mix(x + np.asarray(line, dtype=np.uint64) * np.uint64(_GOLDEN))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _expand(headers: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat each header ``count`` times and number its lines 0..count-1."""
    repeated = np.repeat(headers, counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return repeated, np.arange(len(repeated)) - starts


# ---------------------------------------------------------------------------------------------
# Pass 1: calendar, catalogue, customers, invoice headers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Catalogue:
    """Products (index 0..n-1) and the lookup tables for the printed codes and descriptions."""

    codes: np.ndarray  # object: stock code of each product, then the service codes
    descriptions: np.ndarray  # object: first descriptions, second ones, services, notes, None
    has_alt: np.ndarray  # bool per product
    price_mills: np.ndarray  # retail unit price in 1/1000 pound
    bulk_mills: np.ndarray  # unit price for 24 or more
    cdf: np.ndarray  # popularity

    @property
    def size(self) -> int:
        return len(self.has_alt)

    def service(self, name: str) -> int:
        """Index of a service code in ``codes`` (and of its description in ``descriptions``)."""
        return self.size + _SERVICE_NAMES.index(name)

    def service_desc(self, name: str) -> int:
        return 2 * self.size + _SERVICE_NAMES.index(name)

    def note_desc(self, note: np.ndarray) -> np.ndarray:
        return 2 * self.size + len(_SERVICE_NAMES) + note

    @property
    def missing_desc(self) -> int:
        return len(self.descriptions) - 1


@dataclass(frozen=True)
class _Plan:
    """Everything at invoice grain, sorted in file order; lines are derived from it."""

    seed: int
    catalogue: _Catalogue
    kind: np.ndarray  # int8
    minute: np.ndarray  # int64 minutes since FIRST_DAY 00:00
    invoice_no: np.ndarray  # object: printed invoice number
    customer: np.ndarray  # int64 customer index (natural and scripted), -1 anonymous
    customer_id: np.ndarray  # int64 printed id, -1 anonymous
    country: np.ndarray  # int16 index into COUNTRIES
    n_lines: np.ndarray  # int64 base line count
    ref: np.ndarray  # int64 purchase header a natural return refers to, else -1
    favourites: np.ndarray  # (natural customers, _FAVOURITES) product indices
    wholesale: np.ndarray  # bool per natural customer
    script_lines: pd.DataFrame  # header, seq, stock, desc, qty, mills


def _calendar() -> tuple[np.ndarray, np.ndarray]:
    """Trading days (as day offsets from FIRST_DAY) and the cumulative share of invoices."""
    days = np.arange(FIRST_DAY, LAST_DAY + 1)
    weekday = (days.astype(np.int64) + 3) % 7
    months = days.astype("datetime64[M]")
    weight = _WEEKDAY_FACTOR[weekday].copy()
    weight[(days >= _CHRISTMAS_BREAK[0]) & (days <= _CHRISTMAS_BREAK[1])] = 0.0
    for (year, month), invoices in _MONTH_INVOICES.items():
        in_month = months == np.datetime64(f"{year}-{month:02d}", "M")
        weight[in_month] *= invoices / weight[in_month].sum()
    trading = np.flatnonzero(weight > 0)
    share = weight[trading]
    return trading, np.cumsum(share) / share.sum()


def _draw_minutes(
    rng: np.random.Generator, trading: np.ndarray, cdf: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Invoice times: the day where cumulative share ``u`` falls, a trading hour, a minute."""
    day = trading[np.minimum(np.searchsorted(cdf, u, side="right"), len(trading) - 1)]
    hour = _FIRST_HOUR + rng.choice(len(_HOUR_WEIGHTS), size=len(u), p=_hour_p())
    return day * 1440 + hour * 60 + rng.integers(0, 60, size=len(u))


def _hour_p() -> np.ndarray:
    return _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()


def _catalogue(rng: np.random.Generator, n_customers: int) -> _Catalogue:
    """A few hundred products for small files, up to ~3,800 like the real file."""
    size = int(np.clip(250 + 0.9 * n_customers, 300, 3800))
    names: list[str] = [first for first, _ in _SPECIAL_PRODUCTS.values()]
    seen = set(names)
    while len(names) < size:
        adjective = _ADJECTIVES[rng.integers(len(_ADJECTIVES))].replace("-", " ")
        pattern = _PATTERNS[rng.integers(len(_PATTERNS))]
        thing = _OBJECTS[rng.integers(len(_OBJECTS))]
        shape = rng.random()
        if shape < 0.01:
            name = f"{thing}, {pattern}"  # a comma, quoted in the CSV
        elif shape < 0.5:
            name = f"{pattern} {thing}"
        else:
            name = f"{adjective} {pattern} {thing}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    trailing = rng.random(size) < 0.2
    trailing[: len(_SPECIAL_PRODUCTS)] = False
    firsts = [name + " " if pad else name for name, pad in zip(names, trailing, strict=True)]

    has_alt = rng.random(size) < 0.05
    has_alt[: len(_SPECIAL_PRODUCTS)] = False
    alts: list[str | None] = [None] * size
    for i in np.flatnonzero(has_alt):
        words = names[i].split(" ")
        alts[i] = " ".join(words[1:]) if len(words) > 2 else names[i].replace(" ", "  ", 1)
    for i, (_, alt) in enumerate(_SPECIAL_PRODUCTS.values()):
        if alt is not None:
            has_alt[i] = True
            alts[i] = alt

    codes: list[str] = []
    taken: set[str] = set()
    bases = rng.choice(np.arange(10002, 91000), size=size, replace=False)
    for i in range(size):
        family = rng.random() < 0.3 and i > 0
        base = int(bases[rng.integers(i)]) if family else int(bases[i])
        suffix = "" if not family and rng.random() < 0.9 else _CODE_SUFFIXES[rng.integers(11)]
        code = f"{base}{suffix}"
        while code in taken:
            code = f"{base}{_CODE_SUFFIXES[rng.integers(11)]}{rng.integers(10)}"
        taken.add(code)
        codes.append(code)

    pounds = np.exp(rng.normal(np.log(2.1), 0.85, size))
    pence = np.maximum(np.round(pounds * 20) * 5 - rng.choice([0, 0, 5, 6], size), 6).astype(int)
    weights = 1.0 / (rng.permutation(size) + 50.0) ** 0.9  # top product ~0.4% of lines
    service_descs = [SERVICE_CODES[name][0] for name in _SERVICE_NAMES]
    return _Catalogue(
        codes=np.array(codes + _SERVICE_NAMES, dtype=object),
        descriptions=np.array(
            [*firsts, *alts, *service_descs, *_ADJUSTMENT_NOTES, None], dtype=object
        ),
        has_alt=has_alt,
        price_mills=pence * 10,
        bulk_mills=np.round(pence * 0.85).astype(int) * 10,
        cdf=np.cumsum(weights) / weights.sum(),
    )


def _plan(n_customers: int, seed: int) -> _Plan:
    """Pass 1: draw the catalogue, the customers and all invoice headers, in file order."""
    if n_customers < MIN_CUSTOMERS:
        raise ValueError(f"n_customers must be at least {MIN_CUSTOMERS}, got {n_customers}")
    rng = np.random.default_rng(seed)
    catalogue = _catalogue(rng, n_customers)
    trading, cdf = _calendar()
    n = n_customers - SCRIPTED_CUSTOMERS

    # customers: country, orders (log-normal: ~34% one-time buyers), wholesale, favourites
    weights = np.array(list(_COUNTRY_CUSTOMERS.values()), dtype=float)
    home = rng.choice(len(COUNTRIES), size=n, p=weights / weights.sum())
    abroad = rng.choice(len(COUNTRIES), size=n, p=_abroad_p(weights))
    multi_country = rng.random(n) < _MULTI_COUNTRY_SHARE
    orders = np.maximum(1, np.ceil(np.exp(rng.normal(0.53, 1.3, n)))).astype(np.int64)
    orders = np.minimum(orders, 250)
    wholesale = np.zeros(n, dtype=bool)
    wholesale[rng.choice(n, size=max(2, round(n * _WHOLESALE_PER_CUSTOMER)), replace=False)] = True
    orders[wholesale] = rng.integers(100, 221, size=int(wholesale.sum()))
    basket = np.exp(rng.normal(np.log(12.0), 0.95, n))
    basket[wholesale] = rng.uniform(8, 20, size=int(wholesale.sum()))
    favourites = np.searchsorted(catalogue.cdf, rng.random((n, _FAVOURITES)), side="right")
    customer_ids = FIRST_CUSTOMER_ID + rng.permutation(n_customers)

    # purchase invoices: times inside a customer's active window (in cumulative-share space)
    # (windows wrap around the year's end, so every part of the year is covered evenly)
    span = np.clip(0.1 + 0.22 * np.log(orders), 0.02, 1.0)
    start = rng.random(n)
    buyer = np.repeat(np.arange(n), orders)
    share = (start[buyer] + rng.random(len(buyer)) * span[buyer]) % 1.0
    p_minute = _draw_minutes(rng, trading, cdf, share)
    p_country = np.where(
        multi_country[buyer] & (rng.random(len(buyer)) < 0.4), abroad[buyer], home[buyer]
    )
    # (a third of the catalogue at most, so that small catalogues keep invoices' lines distinct)
    max_lines = min(600, catalogue.size // 3)
    p_lines = np.round(basket[buyer] * np.exp(rng.normal(0, 0.5, len(buyer))))
    p_lines = np.clip(p_lines, 1, max_lines)

    # cancellation invoices: after a purchase (same day or days later, next trading day)
    source = np.flatnonzero(rng.random(len(buyer)) < _RETURN_INVOICE_RATE)
    r_minute = _later_minutes(rng, trading, p_minute[source])
    keep = r_minute >= 0
    source, r_minute = source[keep], r_minute[keep]
    r_lines = np.minimum(rng.geometric(0.45, len(source)), 30)

    # anonymous invoices: shop baskets (as many as make their lines a set share of the customer
    # lines), stock adjustments and returns (a number per customer)
    shop_target = _ANON_SHOP_LINES_PER_CUSTOMER_LINE * p_lines.sum()
    shop_lines = np.round(np.exp(rng.normal(np.log(45.0), 1.0, int(shop_target // 20) + 10)))
    shop_lines = np.clip(shop_lines, 1, 2 * max_lines)
    n_shop = max(3, int(np.searchsorted(np.cumsum(shop_lines), shop_target)))
    n_adjust, n_anon_return = (
        max(3, round(n * rate)) for rate in (_ANON_ADJUST_PER_CUSTOMER, _ANON_RETURN_PER_CUSTOMER)
    )
    n_anon = n_shop + n_adjust + n_anon_return
    a_kind = np.repeat([_ANON_SHOP, _ANON_ADJUST, _ANON_RETURN], [n_shop, n_adjust, n_anon_return])
    a_minute = _draw_minutes(rng, trading, cdf, rng.random(n_anon))
    anon_countries = list(_ANON_COUNTRY_WEIGHTS)
    a_country = np.array([COUNTRIES.index(c) for c in anon_countries])[
        rng.choice(len(anon_countries), size=n_anon, p=list(_ANON_COUNTRY_WEIGHTS.values()))
    ]
    a_lines = np.concatenate(
        [
            shop_lines[:n_shop],
            rng.geometric(0.75, n_adjust),
            np.minimum(rng.geometric(0.7, n_anon_return), 3),
        ]
    )

    script = _script_headers(catalogue, trading, n)
    n_p, n_r = len(buyer), len(source)
    kind = np.concatenate(
        [
            np.full(n_p, _PURCHASE),
            np.full(n_r, _RETURN),
            a_kind,
            np.full(len(script.minute), _SCRIPTED),
        ]
    ).astype(np.int8)
    customer = np.concatenate([buyer, buyer[source], np.full(n_anon, -1), script.customer])
    minute = np.concatenate([p_minute, r_minute, a_minute, script.minute])
    # file order: by time; within a minute purchases before returns, then draw order
    order = np.lexsort((np.arange(len(kind)), kind, minute))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    ref = np.concatenate([np.full(n_p, -1), source, np.full(n_anon + len(script.minute), -1)])
    ref = np.where(ref >= 0, rank[np.maximum(ref, 0)], -1)

    prefix = np.concatenate(
        [np.zeros(n_p, int), np.ones(n_r, int), (a_kind == _ANON_RETURN).astype(int), script.prefix]
    )[order]
    numbers = (FIRST_INVOICE_NO + np.arange(len(order))).astype(str).astype(object)
    customer = customer[order]
    script_lines = script.lines.assign(header=rank[script.lines["header"] + n_p + n_r + n_anon])
    return _Plan(
        seed=seed,
        catalogue=catalogue,
        kind=kind[order],
        minute=minute[order],
        invoice_no=_PREFIXES[prefix] + numbers,
        customer=customer,
        customer_id=np.where(customer >= 0, customer_ids[np.maximum(customer, 0)], -1),
        country=np.concatenate([p_country, p_country[source], a_country, script.country])[
            order
        ].astype(np.int16),
        n_lines=np.concatenate([p_lines, r_lines, a_lines, np.zeros(len(script.minute))]).astype(
            np.int64
        )[order],
        ref=ref[order],
        favourites=favourites,
        wholesale=wholesale,
        script_lines=script_lines.sort_values(["header", "seq"], kind="stable"),
    )


def _abroad_p(weights: np.ndarray) -> np.ndarray:
    """Country shares for a multi-country customer's second country (never the UK)."""
    abroad = weights.copy()
    abroad[_UK] = 0.0
    return abroad / abroad.sum()


def _later_minutes(rng: np.random.Generator, trading: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Times of cancellations strictly after ``after``: a quarter the same day, the others days
    later on the next trading day; -1 when that falls after the last day."""
    n = len(after)
    day, minute_of_day = np.divmod(after, 1440)
    same_day = (rng.random(n) < 0.25) & (minute_of_day < 20 * 60 + 59)
    later = np.minimum(minute_of_day + rng.integers(1, 300, n), 20 * 60 + 59)
    delay_days = np.ceil(np.exp(rng.normal(np.log(14.0), 1.0, n))).astype(np.int64)
    position = np.searchsorted(trading, day + delay_days)
    next_day = trading[np.minimum(position, len(trading) - 1)]
    hour = _FIRST_HOUR + rng.choice(len(_HOUR_WEIGHTS), size=n, p=_hour_p())
    other = next_day * 1440 + hour * 60 + rng.integers(0, 60, n)
    result = np.where(same_day, day * 1440 + later, other)
    return np.where(same_day | (position < len(trading)), result, -1)


@dataclass(frozen=True)
class _ScriptHeaders:
    minute: np.ndarray
    customer: np.ndarray
    country: np.ndarray
    prefix: np.ndarray
    lines: pd.DataFrame  # header is the position among the script headers


def _script_headers(catalogue: _Catalogue, trading: np.ndarray, n_natural: int) -> _ScriptHeaders:
    """Headers and lines of ``_SCRIPT`` (three instances) and ``_BAD_DEBT`` (once)."""
    specials = list(_SPECIAL_PRODUCTS)
    minute, customer, country, prefix = [], [], [], []
    rows: list[tuple[int, int, int, int, int, int]] = []
    for instance, base_day in enumerate(_SCRIPT_BASE_DAYS):
        home, abroad = (COUNTRIES.index(c) for c in _SCRIPT_COUNTRIES[instance])
        invoices = _SCRIPT + (_BAD_DEBT if instance == 0 else [])
        for slot, day, clock, invoice_prefix, lines, second_country in invoices:
            hours, minutes = clock.split(":")
            header = len(minute)
            minute.append(int(trading[base_day + day]) * 1440 + int(hours) * 60 + int(minutes))
            customer.append(-1 if slot is None else n_natural + instance * SCRIPT_SLOTS + slot)
            if slot == SCRIPT_SLOTS - 1:
                country.append(abroad if second_country else home)
            else:
                country.append(_UK)
            prefix.append(["", "C", "A"].index(invoice_prefix))
            seq = 0
            for item, quantity, price, flags in lines:
                if item in _SPECIAL_PRODUCTS:
                    stock = specials.index(item)
                elif item.startswith("p") and item[1:].isdigit():
                    cell = instance * (SCRIPT_SLOTS + 1) + (SCRIPT_SLOTS if slot is None else slot)
                    stock = len(specials) + cell * 3 + int(item[1:])
                else:
                    stock = catalogue.service(item)
                if stock < catalogue.size:
                    desc = stock + catalogue.size * (flags == "alt")
                    mills = catalogue.price_mills[stock]
                else:
                    desc = catalogue.service_desc(item)
                    mills = round(SERVICE_CODES[item][1] * 1000)
                if price is not None:
                    mills = round(price * 1000)
                for _ in range(2 if flags == "dup" else 1):
                    rows.append((header, seq, stock, desc, quantity, int(mills)))
                    seq += 1
    return _ScriptHeaders(
        minute=np.array(minute, dtype=np.int64),
        customer=np.array(customer, dtype=np.int64),
        country=np.array(country, dtype=np.int64),
        prefix=np.array(prefix, dtype=np.int64),
        lines=pd.DataFrame(rows, columns=["header", "seq", "stock", "desc", "qty", "mills"]),
    )


# ---------------------------------------------------------------------------------------------
# Pass 2: lines
# ---------------------------------------------------------------------------------------------
def _pack(u: np.ndarray) -> np.ndarray:
    return _PACKS[np.minimum(np.searchsorted(_PACK_CDF, u, side="right"), len(_PACKS) - 1)]


def _popular(catalogue: _Catalogue, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(catalogue.cdf, u, side="right"), catalogue.size - 1)


def _spread_products(plan: _Plan, header: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Popular products for the lines of an invoice, nearly all distinct within the invoice.

    Stratified draws: line ``j`` of ``n`` takes a uniform from its own ``1/n`` of the popularity
    scale (shifted per invoice), so two lines rarely pick the same product."""
    seed, n = plan.seed, plan.n_lines[header]
    shift = _uniform(seed, _S_OFFSET, header, 0)
    u = (shift + (line + _uniform(seed, _S_PRODUCT, header, line)) / n) % 1.0
    return _popular(plan.catalogue, u)


def _purchase_items(
    plan: _Plan, header: np.ndarray, line: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Product and quantity of purchase line ``line`` of natural purchase invoice ``header``.

    The first ``_FAVOURITES`` lines take the customer's favourites now and then (each favourite
    at most once per invoice), the others popular products. A pure function of its arguments,
    so that a cancellation can recompute what it returns."""
    seed = plan.seed
    customer = plan.customer[header]
    step = 2 * (_uniform(seed, _S_SLOT, header, 0) * _FAVOURITES / 2).astype(np.int64) + 1
    first = (_uniform(seed, _S_SLOT, header, 1) * _FAVOURITES).astype(np.int64)
    slot = (first + line * step) % _FAVOURITES
    favourite = (line < _FAVOURITES) & (_uniform(seed, _S_FAV, header, line) < _FAVOURITE_SHARE)
    product = np.where(
        favourite, plan.favourites[customer, slot], _spread_products(plan, header, line)
    )
    quantity = _pack(_uniform(seed, _S_QTY, header, line))
    quantity = np.where(plan.wholesale[customer], quantity * 4, quantity)
    return product, quantity


def _product_price(catalogue: _Catalogue, product: np.ndarray, quantity: np.ndarray) -> np.ndarray:
    return np.where(
        np.abs(quantity) >= 24, catalogue.bulk_mills[product], catalogue.price_mills[product]
    )


def _product_desc(
    plan: _Plan, product: np.ndarray, header: np.ndarray, line: np.ndarray
) -> np.ndarray:
    alt = plan.catalogue.has_alt[product] & (
        _uniform(plan.seed, _S_DESC, header, line) < _ALT_DESCRIPTION_SHARE
    )
    return product + plan.catalogue.size * alt


_LineArrays = dict[str, np.ndarray]


def _lines(
    header: np.ndarray,
    seq: np.ndarray,
    stock: np.ndarray | int,
    desc: np.ndarray | int,
    qty: np.ndarray | int,
    mills: np.ndarray | float,
) -> _LineArrays:
    n = len(header)
    return {
        "header": header,
        "seq": seq,
        "stock": np.broadcast_to(stock, n),
        "desc": np.broadcast_to(desc, n),
        "qty": np.broadcast_to(qty, n),
        "mills": np.broadcast_to(mills, n),
    }


def _purchase_lines(plan: _Plan, headers: np.ndarray) -> list[_LineArrays]:
    """Natural purchase invoices: products, then service lines (postage and the like)."""
    catalogue, seed = plan.catalogue, plan.seed
    header, line = _expand(headers, plan.n_lines[headers])
    product, qty = _purchase_items(plan, header, line)
    mills = _product_price(catalogue, product, qty)
    mills = np.where(_uniform(seed, _S_ZERO, header, line) < _ZERO_PRICE_CUSTOMER_LINE, 0, mills)
    parts = [_lines(header, line, product, _product_desc(plan, product, header, line), qty, mills)]
    abroad = plan.country[headers] != _UK
    for k, (code, (p_home, p_abroad)) in enumerate(_PURCHASE_SERVICES.items()):
        chosen = _uniform(seed, _S_SERVICE + 100 * k, headers, 0) < np.where(
            abroad, p_abroad, p_home
        )
        h = headers[chosen]
        u = _uniform(seed, _S_PRICE + 100 * k, h, 0)
        base = SERVICE_CODES[code][1]
        mills = np.round(base * 1000 * (0.5 + 1.5 * u) / 10) * 10 if code != "PADS" else 1
        qty = 1 + (u * 3).astype(np.int64) if code == "POST" else 1
        parts.append(
            _lines(
                h,
                plan.n_lines[h] + k,
                catalogue.service(code),
                catalogue.service_desc(code),
                qty,
                mills,
            )
        )
    return parts


def _return_lines(plan: _Plan, headers: np.ndarray) -> list[_LineArrays]:
    """Natural cancellation invoices: most lines return a line of the purchase they refer to,
    with the same, a smaller or (rarely) a larger quantity; others return a favourite or any
    product (which may have no earlier purchase); a few are service lines."""
    catalogue, seed = plan.catalogue, plan.seed
    header, line = _expand(headers, plan.n_lines[headers])
    customer, ref = plan.customer[header], plan.ref[header]
    kind_u = _uniform(seed, _S_RTYPE, header, line)
    # consecutive lines of the purchase from a random start: distinct lines of it
    first = (_uniform(seed, _S_RLINE, header, 0) * plan.n_lines[ref]).astype(np.int64)
    ref_line = (first + line) % plan.n_lines[ref]
    matched_product, bought = _purchase_items(plan, ref, ref_line)
    slot = (_uniform(seed, _S_SLOT, header, line) * _FAVOURITES).astype(np.int64)
    product = np.select(
        [kind_u < 0.80, kind_u < 0.92],
        [matched_product, plan.favourites[customer, slot]],
        _popular(catalogue, _uniform(seed, _S_PRODUCT, header, line)),
    )
    qty_u = _uniform(seed, _S_RQTY, header, line)
    smaller = 1 + (_uniform(seed, _S_RQTY2, header, line) * (bought - 1)).astype(np.int64)
    matched_qty = np.select([qty_u < 0.35, qty_u < 0.99], [bought, smaller], bought + _pack(qty_u))
    qty = -np.where(kind_u < 0.80, matched_qty, _pack(_uniform(seed, _S_QTY, header, line)))
    parts = []
    is_service = kind_u >= 0.96
    product_line = ~is_service
    parts.append(
        _lines(
            header[product_line],
            line[product_line],
            product[product_line],
            product[product_line],
            qty[product_line],
            _product_price(catalogue, product[product_line], qty[product_line]),
        )
    )
    code_u = _uniform(seed, _S_CODE, header[is_service], line[is_service])
    codes = np.array(["M", "POST", "D", "CRUK"])[
        np.searchsorted([0.55, 0.8, 0.95], code_u, side="right")
    ]
    for code in ("M", "POST", "D", "CRUK"):
        chosen = codes == code
        h, j = header[is_service][chosen], line[is_service][chosen]
        mills = np.round(SERVICE_CODES[code][1] * 1000 * (0.5 + 2 * code_u[chosen]) / 10) * 10
        parts.append(_lines(h, j, catalogue.service(code), catalogue.service_desc(code), -1, mills))
    return parts


def _anonymous_lines(plan: _Plan, headers: np.ndarray) -> list[_LineArrays]:
    """Lines without a customer id: shop baskets (dotcom prices, postage, gift vouchers),
    zero-price stock adjustments (often negative, often no description) and fee returns."""
    catalogue, seed = plan.catalogue, plan.seed
    parts = []
    kind = plan.kind[headers]

    shop = headers[kind == _ANON_SHOP]
    header, line = _expand(shop, plan.n_lines[shop])
    product = _spread_products(plan, header, line)
    qty = _pack(_uniform(seed, _S_QTY, header, line))
    markup = np.where(_uniform(seed, _S_PRICE, header, line) < 0.7, 1.7, 1.0)
    mills = np.round(_product_price(catalogue, product, qty) * markup / 10) * 10
    parts.append(
        _lines(header, line, product, _product_desc(plan, product, header, line), qty, mills)
    )
    dot = shop[_uniform(seed, _S_SERVICE, shop, 0) < 0.35]
    dot_mills = np.round(1000 * np.exp(2 + 5 * _uniform(seed, _S_PRICE, dot, 1)) / 10) * 10
    parts.append(
        _lines(
            dot,
            plan.n_lines[dot],
            catalogue.service("DOT"),
            catalogue.service_desc("DOT"),
            1,
            dot_mills,
        )
    )
    gift = shop[_uniform(seed, _S_SERVICE, shop, 1) < 0.02]
    which = (_uniform(seed, _S_CODE, gift, 0) * len(_GIFTS)).astype(np.int64)
    gift_stock = np.array([catalogue.service(code) for code in _GIFTS])[which]
    gift_mills = np.array([round(SERVICE_CODES[code][1] * 1000) for code in _GIFTS])[which]
    parts.append(
        _lines(gift, plan.n_lines[gift] + 1, gift_stock, gift_stock + catalogue.size, 1, gift_mills)
    )

    adjust = headers[kind == _ANON_ADJUST]
    header, line = _expand(adjust, plan.n_lines[adjust])
    product = _popular(catalogue, _uniform(seed, _S_PRODUCT, header, line))
    note_u = _uniform(seed, _S_NOTE, header, line)
    note = (note_u * len(_ADJUSTMENT_NOTES) * 2.5).astype(np.int64)
    desc = np.where(
        note < len(_ADJUSTMENT_NOTES), catalogue.note_desc(note), catalogue.missing_desc
    )
    sign = np.where(_uniform(seed, _S_SIGN, header, line) < 0.55, -1, 1)
    qty = sign * _pack(_uniform(seed, _S_QTY, header, line))
    parts.append(_lines(header, line, product, desc, qty, 0))

    returns = headers[kind == _ANON_RETURN]
    header, line = _expand(returns, plan.n_lines[returns])
    code_u = _uniform(seed, _S_CODE, header, line)
    codes = np.array(["S", "AMAZONFEE", "BANK CHARGES", ""])[
        np.searchsorted([0.4, 0.6, 0.75], code_u, side="right")
    ]
    for code in ("S", "AMAZONFEE", "BANK CHARGES"):
        chosen = codes == code
        mills = np.round(SERVICE_CODES[code][1] * 1000 * (0.5 + code_u[chosen]) / 10) * 10
        parts.append(
            _lines(
                header[chosen],
                line[chosen],
                catalogue.service(code),
                catalogue.service_desc(code),
                -1,
                mills,
            )
        )
    chosen = codes == ""
    product = _popular(catalogue, _uniform(seed, _S_PRODUCT, header[chosen], line[chosen]))
    qty = -_pack(_uniform(seed, _S_QTY, header[chosen], line[chosen]))
    parts.append(
        _lines(
            header[chosen],
            line[chosen],
            product,
            product,
            qty,
            _product_price(catalogue, product, qty),
        )
    )
    return parts


def _chunk_frame(plan: _Plan, start: int, stop: int) -> pd.DataFrame:
    """Pass 2: the raw lines of invoice headers ``start``..``stop - 1``, in file order."""
    headers = np.arange(start, stop)
    kind = plan.kind[headers]
    parts = [
        *_purchase_lines(plan, headers[kind == _PURCHASE]),
        *_return_lines(plan, headers[kind == _RETURN]),
        *_anonymous_lines(plan, headers[np.isin(kind, [_ANON_SHOP, _ANON_ADJUST, _ANON_RETURN])]),
    ]
    lines = {
        key: np.concatenate([part[key] for part in parts]).astype(np.int64) for key in parts[0]
    }

    # exact duplicates: a copy of the line at the end of its invoice
    dup_rate = np.select(
        [plan.kind[lines["header"]] == _PURCHASE, plan.kind[lines["header"]] == _RETURN],
        [_DUPLICATE_RATE["purchase"], _DUPLICATE_RATE["return"]],
        _DUPLICATE_RATE["anonymous"],
    )
    dup = _uniform(plan.seed, _S_DUP, lines["header"], lines["seq"]) < dup_rate
    copies = {key: values[dup] for key, values in lines.items()}
    copies["seq"] = copies["seq"] + 1_000_000
    scripted = plan.script_lines[
        (plan.script_lines["header"] >= start) & (plan.script_lines["header"] < stop)
    ]
    lines = {
        key: np.concatenate([lines[key], copies[key], scripted[key].to_numpy(np.int64)])
        for key in lines
    }
    order = np.lexsort((lines["seq"], lines["header"]))
    header = lines["header"][order]
    catalogue = plan.catalogue
    customer_id = plan.customer_id[header]
    return pd.DataFrame(
        {
            "InvoiceNo": pd.array(plan.invoice_no[header], dtype="str"),
            "StockCode": pd.array(catalogue.codes[lines["stock"][order]], dtype="str"),
            "Description": pd.array(catalogue.descriptions[lines["desc"][order]], dtype="str"),
            "Quantity": lines["qty"][order],
            "InvoiceDate": FIRST_DAY.astype("datetime64[m]") + plan.minute[header],
            "UnitPrice": lines["mills"][order] / 1000.0,
            "CustomerID": pd.Series(customer_id, dtype="Int64").mask(customer_id < 0),
            "Country": pd.array(
                np.array(COUNTRIES, dtype=object)[plan.country[header]], dtype="str"
            ),
        }
    )


def iter_raw_chunks(
    n_customers: int, seed: int = 0, *, chunk_lines: int = DEFAULT_CHUNK_LINES
) -> Iterator[pd.DataFrame]:
    """Yield the raw lines in file order, about ``chunk_lines`` at a time.

    Memory holds the invoice headers (about 1/25 of the lines) and one chunk. The concatenated
    chunks are the same for every ``chunk_lines``.
    """
    plan = _plan(n_customers, seed)
    weight = np.cumsum(np.maximum(plan.n_lines, 1))
    cuts = np.searchsorted(weight, np.arange(chunk_lines, weight[-1], chunk_lines), side="right")
    bounds = [0, *np.unique(cuts).tolist(), len(weight)]
    for start, stop in itertools.pairwise(bounds):
        if stop > start:
            yield _chunk_frame(plan, start, stop)


def generate_raw_lines(n_customers: int, seed: int = 0) -> pd.DataFrame:
    """All raw lines for ``n_customers`` customers (at least ``MIN_CUSTOMERS``) as one frame.

    Columns are the eight raw columns in file order: ``InvoiceDate`` is a datetime (minute
    precision), ``CustomerID`` a nullable integer, the rest as the file spells them. The last
    ``SCRIPTED_CUSTOMERS`` customers follow the script; about 125 lines per customer overall (the
    real file has 124), more per customer in small files (two wholesale customers at least).
    """
    return pd.concat(iter_raw_chunks(n_customers, seed), ignore_index=True)


def scaled_customers(scale: float) -> int:
    """Number of customers of a file ``scale`` times the real one (``REAL_CUSTOMERS``).

    Raises ``ValueError`` when that is fewer than ``MIN_CUSTOMERS`` or ``scale`` is not positive.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    n_customers = round(scale * REAL_CUSTOMERS)
    if n_customers < MIN_CUSTOMERS:
        raise ValueError(f"scale {scale} gives {n_customers} customers; at least {MIN_CUSTOMERS}")
    return n_customers


def _format_dates(values: pd.Series) -> np.ndarray:
    """``M/D/YYYY H:MM`` without zero padding of month, day and hour."""
    minutes = values.to_numpy().astype("datetime64[m]").astype(np.int64)
    unique, inverse = np.unique(minutes, return_inverse=True)
    texts = [
        f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}"
        for t in unique.astype("datetime64[m]").tolist()
    ]
    return np.array(texts, dtype=object)[inverse]


def _csv_bytes(lines: pd.DataFrame) -> bytes:
    """The CSV body (no header) of ``lines`` in the raw file's format, latin-1 encoded."""
    frame = lines[RAW_COLUMNS].copy()
    frame["InvoiceDate"] = _format_dates(frame["InvoiceDate"])
    frame["CustomerID"] = frame["CustomerID"].astype("Int64")
    buffer = io.StringIO()
    frame.to_csv(buffer, header=False, index=False, lineterminator="\n")
    return buffer.getvalue().encode("latin-1")


def write_raw_file(
    lines: pd.DataFrame | Iterable[pd.DataFrame], path: str | Path, *, level: int = 3
) -> Path:
    """Write raw lines (one frame or an iterable of chunks) as a zstd-compressed latin-1 CSV.

    The header is ``InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,
    Country``; dates are written ``M/D/YYYY H:MM``; chunks are compressed as they come.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [lines] if isinstance(lines, pd.DataFrame) else lines
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
    with path.open("wb") as handle, compressor.stream_writer(handle, closefd=False) as out:
        out.write((",".join(RAW_COLUMNS) + "\n").encode("latin-1"))
        for chunk in chunks:
            out.write(_csv_bytes(chunk))
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m retail_segments_dev.synthetic (--customers N | --scale F) --seed S
    --out PATH``.

    ``--scale F`` means ``F`` times the real file's ``REAL_CUSTOMERS`` customers (rounded).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--customers", type=int, help="number of customers")
    size.add_argument(
        "--scale", type=float, help=f"scale factor: this many times {REAL_CUSTOMERS:,} customers"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output .csv.zst path")
    parser.add_argument(
        "--chunk-lines", type=int, default=DEFAULT_CHUNK_LINES, help="lines per chunk in memory"
    )
    args = parser.parse_args(argv)
    n_customers = args.customers if args.scale is None else scaled_customers(args.scale)
    path = write_raw_file(
        iter_raw_chunks(n_customers, args.seed, chunk_lines=args.chunk_lines), args.out
    )
    print(f"wrote {path} ({n_customers} customers, {math.ceil(path.stat().st_size / 1024)} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The behaviour model's numbers and names: visit rates and their calibration target, the
seasons of joining, gyms, plans, the weekday rhythm, the timetable's slots and class types, the
people's names and email domains, and how check-in times are written. Every random choice comes
from :func:`_rng`, a stream named by (seed, purpose[, day])."""

from __future__ import annotations

import datetime as dt

import numpy as np

TARGET_VISITS_PER_YEAR = 100.0
#: Share of demand expected to be turned away by full classes (calibration allowance).
_CAPACITY_LOSS = 0.012
#: Classes are sized so that a busy (75th percentile) day fills them to about this share.
_TARGET_UTILISATION = 0.72
#: A slot below this many classes' worth of demand is not run, except the day's busiest ones.
_MIN_SLOT_DEMAND = 0.35
_CORE_SLOTS = 3
_PMAX = 0.95  # a visit day is never quite certain
#: Share of visit days on which a member books a second class (real members do, at the same
#: gym, another class than the first); the calibration keeps ~100 check-ins a year.
_DOUBLE_CLASS = 0.06
_HONEYMOON = 0.6  # new members' extra keenness, decaying over ~3 weeks
_PRE_HISTORY_DAYS = 3 * 365  # how far back the earliest members joined
_PRE_HISTORY_SHARE = 0.5  # members who joined before the history starts
_FLOOR_DATE = dt.date(2000, 1, 1)
_NEVER = np.iinfo(np.int32).max // 2
_CALIBRATION_CELLS = 8_000_000  # sample members x days held for calibration (float32)

LOCATION_NAMES = (
    "Peak Camden",
    "Peak Shoreditch",
    "Peak Brixton",
    "Peak Islington",
    "Peak Clapham",
    "Peak Hackney",
    "Peak Greenwich",
    "Peak Wimbledon",
    "Peak Richmond",
    "Peak Ealing",
    "Peak Stratford",
    "Peak Canary Wharf",
)
#: Relative size of each gym (cycled when there are more gyms).
_LOCATION_WEIGHTS = (1.35, 1.15, 1.0, 0.9, 0.8, 0.75, 0.7, 0.65)

PLANS = ("basic", "plus", "premium")
_PLAN_SHARE = (0.5, 0.32, 0.18)
_PLAN_RATE = (0.85, 1.05, 1.3)

#: Global weekday rhythm, Mon..Sun (mean 1).
_WEEKDAY_FACTOR = np.array([1.16, 1.12, 1.06, 1.02, 0.86, 0.8, 0.68]) / (7.72 / 7)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: Timetable slots: (start, popularity). Weekdays peak before work and after it.
_WEEKDAY_SLOTS = (
    ("06:30", 1.0),
    ("07:15", 1.3),
    ("09:30", 0.6),
    ("10:30", 0.35),
    ("12:15", 0.8),
    ("13:15", 0.35),
    ("17:30", 1.3),
    ("18:15", 1.7),
    ("19:00", 1.4),
    ("19:45", 0.9),
    ("20:30", 0.45),
)
_WEEKEND_SLOTS = (
    ("08:00", 0.6),
    ("09:00", 1.2),
    ("10:00", 1.5),
    ("11:00", 1.2),
    ("12:00", 0.8),
    ("14:00", 0.3),
    ("16:00", 0.5),
    ("17:00", 0.35),
)
_FRIDAY_EVENING = 0.65  # Friday evenings are quieter
_SUNDAY_DROP = ("17:00",)

#: Preferred time of day: (name, share of members, (first hour, last hour) boosted).
_PREFERENCES = (
    ("morning", 0.30, (0, 10)),
    ("midday", 0.12, (10, 16)),
    ("evening", 0.38, (16, 24)),
    ("any", 0.20, None),
)
_PREF_BOOST = 4.0

#: Class types: (name, minutes, capacity, weight). Names exercise CSV quoting on purpose.
_CLASS_TYPES = (
    ("Spin 45", 45, 24, 1.6),
    ("Spin 30 Express", 30, 20, 0.8),
    ("Yoga Flow", 60, 25, 1.3),
    ("Yin Yoga", 75, 20, 0.5),
    ("HIIT", 30, 20, 1.4),
    ("Pilates", 50, 18, 1.0),
    ("Body Pump", 55, 30, 1.1),
    ("Boxfit", 45, 20, 0.8),
    ("Barre", 45, 16, 0.6),
    ("Zumba", 60, 35, 0.6),
    ("Kettlebell Blast", 30, 16, 0.6),
    ("Stretch, Roll & Release", 40, 20, 0.5),
    ("Strength & Conditioning", 60, 18, 0.9),
    ("Core Blast", 30, 20, 0.7),
    ("Bootcamp", 45, 25, 0.7),
    ("Rock 'n' Ride", 45, 24, 0.4),
    ('Circuit "Beast Mode"', 45, 20, 0.4),
    ("Aqua Fit", 45, 25, 0.4),
)

_INSTRUCTOR_FIRST = (
    "Sam", "Alex", "Jordan", "Priya", "Tom", "Chloé", "Zoë", "Siobhán", "José", "Aoife", "Ngozi",
    "Tomasz", "Léa", "Björn", "Maya", "Kofi", "Hannah", "Raj", "Elena", "Dan", "Amara", "Lucas",
    "Fatima", "Ollie", "Mei", "Kwame", "Isla", "Mateo", "Noor", "Ben",
)  # fmt: skip
_INSTRUCTOR_LAST = (
    "Clarke", "O'Neill", "Martínez", "Byrne", "Okafor", "Shah", "Nowak", "Dubois", "Larsen",
    "Patel", "Mensah", "Evans", "Kowalski", "Rossi", "Nguyen", "Hughes", "Adeyemi", "Silva",
    "Walsh", "Khan", "Murphy", "Chen", "Brown", "Da Costa", "Müller", "Green",
)  # fmt: skip
_EMAIL_FIRST = (
    "alice", "ben", "chloe", "daniel", "emma", "finn", "grace", "harry", "isla", "jack", "kate",
    "liam", "mia", "noah", "olivia", "priya", "quinn", "rosa", "sam", "tara", "umar", "vera",
    "will", "xena", "yusuf", "zoe", "amir", "bea", "carlos", "dina", "ethan", "fatima", "george",
    "hana", "ivan", "jade", "kofi", "lena", "max", "nina", "omar", "poppy", "raj", "sofia",
    "theo", "uma", "victor", "wendy", "yara", "zac", "leo", "ella", "oscar", "ruby", "arjun",
    "mei", "tomasz", "aoife", "jose", "lea",
)  # fmt: skip
_EMAIL_LAST = (
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel",
    "wright", "khan", "walker", "evans", "roberts", "green", "hall", "wood", "clarke", "hughes",
    "edwards", "turner", "martin", "cooper", "hill", "ward", "morris", "moore", "lee", "baker",
    "harris", "okafor", "nguyen", "murphy", "oneill", "kowalski", "rossi", "silva", "chen",
    "mensah", "shah", "byrne", "nowak", "dubois", "larsen", "adeyemi", "walsh", "ali", "begum",
)  # fmt: skip
_EMAIL_DOMAINS = (
    ("gmail.com", 0.36),
    ("outlook.com", 0.12),
    ("hotmail.co.uk", 0.12),
    ("icloud.com", 0.1),
    ("yahoo.co.uk", 0.08),
    ("btinternet.com", 0.05),
    ("live.co.uk", 0.05),
    ("sky.com", 0.04),
    ("proton.me", 0.03),
    ("peak-fitness.co.uk", 0.05),
)

#: Check-in time renderings: (suffix, share, hours added to the UTC clock). Naive means the gym's
#: time zone, which is UTC (the default), so every rendering denotes the same instant.
_TS_FORMATS = (("Z", 0.85, 0), ("+01:00", 0.10, 1), ("", 0.05, 0))


def _rng(seed: int, *purpose: int) -> np.random.Generator:
    """An independent random stream for (seed, purpose...): choices never leak across purposes."""
    return np.random.default_rng([seed % (1 << 64), *purpose])

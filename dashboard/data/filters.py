"""The sidebar's filters, shared by every page (a period and gyms), and what they can
choose from (the days with check-ins and the gyms)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from peak.model.warehouse import Warehouse

DAY = dt.timedelta(days=1)
#: The default period: the last four weeks of data.
DEFAULT_DAYS = 28


@dataclass(frozen=True)
class Filters:
    """The sidebar's filters, shared by every page: a date range (inclusive) and gyms (none
    chosen means every gym)."""

    start: dt.date
    end: dt.date
    locations: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")
        object.__setattr__(self, "locations", tuple(sorted(set(self.locations))))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period to compare with: as long, on the same weekdays, just before this one
        (shifted back by whole weeks: 28 days by 28, 10 days by 14), same gyms."""
        shift = -(-self.days // 7) * 7 * DAY
        return replace(self, start=self.start - shift, end=self.end - shift)


@dataclass(frozen=True)
class Bounds:
    """What the filters can choose from: the days with check-ins and the gyms."""

    first: dt.date | None
    last: dt.date | None
    locations: tuple[str, ...]

    def default_filters(self) -> Filters:
        last = self.last or dt.date.today()
        first = self.first or last
        return Filters(max(first, last - (DEFAULT_DAYS - 1) * DAY), last)


BOUNDS_SQL = """
select
    location,
    cast(min(activity_date) as date) as first_date,
    cast(max(activity_date) as date) as last_date
from mart_location_daily
where visits > 0 and location is not null
group by location
order by location
"""


def bounds(warehouse: Warehouse) -> Bounds:
    frame = warehouse.query(BOUNDS_SQL).to_pylist()
    if not frame:
        return Bounds(None, None, ())
    return Bounds(
        first=min(r["first_date"] for r in frame),
        last=max(r["last_date"] for r in frame),
        locations=tuple(r["location"] for r in frame),
    )

"""Calendar arithmetic for promises and ETAs: business days (Mon-Fri) and end of day, in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum


class ServiceLevel(StrEnum):
    EXPRESS = "express"
    STANDARD = "standard"
    ECONOMY = "economy"


TRANSIT_BUSINESS_DAYS: dict[ServiceLevel, int] = {
    ServiceLevel.EXPRESS: 1,
    ServiceLevel.STANDARD: 3,
    ServiceLevel.ECONOMY: 5,
}

END_OF_DAY = time(23, 59, 59, tzinfo=UTC)


def is_business_day(day: date) -> bool:
    return day.weekday() < 5


def add_business_days(day: date, count: int) -> date:
    """`count` business days after `day` (a weekend `day` counts from the next Monday)."""
    if count < 0:
        raise ValueError("count must not be negative")
    current = day
    while count > 0:
        current += timedelta(days=1)
        if is_business_day(current):
            count -= 1
    return current


def next_business_day(day: date) -> date:
    return add_business_days(day, 1)


def end_of_day(day: date) -> datetime:
    """The last second of `day` in UTC."""
    return datetime.combine(day, END_OF_DAY)


def promised_date(service_level: ServiceLevel | str, ship_date: date) -> date:
    """The delivery date a service level promises for a shipment created on `ship_date`."""
    return add_business_days(ship_date, TRANSIT_BUSINESS_DAYS[ServiceLevel(service_level)])


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()

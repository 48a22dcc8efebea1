"""Dates as Danish readers write them, for every user-facing text (mail, certificate)."""

from __future__ import annotations

from datetime import date

# Spelled out by hand so the output never depends on which locales the host has installed.
MONTHS = (
    "januar",
    "februar",
    "marts",
    "april",
    "maj",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "december",
)


def month_name(month: int) -> str:
    """``marts`` for 3."""
    return MONTHS[month - 1]


def long_date(value: date) -> str:
    """``3. marts 2026``."""
    return f"{value.day}. {month_name(value.month)} {value.year}"

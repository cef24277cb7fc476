"""Small parsing helpers shared by the CLI modules."""

from __future__ import annotations


def split_csv(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']"""
    return [part.strip() for part in text.split(",") if part.strip()]


def counted(n: int, noun: str) -> str:
    """'1 image', '2 images', '0 images' (every noun curator counts takes an -s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

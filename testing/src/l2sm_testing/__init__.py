"""Test doubles for the boundaries the charms talk across; never packed into a charm."""

"""Fixtures live in the test support package; this file only loads them as a plugin."""

pytest_plugins = ["tests.support.plugin"]

"""Runs the Store contract (contract.py) against every implementation."""

from tests.store.contract import *  # noqa: F403

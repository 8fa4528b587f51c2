"""Fixtures for the provider tests: a provider API on loopback and an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .fakes import ProviderAPI


@pytest.fixture
def provider_api() -> Iterator[ProviderAPI]:
    with ProviderAPI() as api:
        yield api


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c

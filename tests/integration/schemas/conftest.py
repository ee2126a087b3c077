from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pipelines.settings import CommonSettings
from schemas.registry import RegistryClient


@pytest.fixture
def registry(settings: CommonSettings) -> Iterator[RegistryClient]:
    client = RegistryClient(**settings.registry_client_config())
    yield client
    client.close()


@pytest.fixture
def subject() -> str:
    """A value subject no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}.robot.telemetry-value"

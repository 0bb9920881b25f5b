"""Fixtures: seed 000 and seed 002 servers on the loopback fixture (see logarchive_rest.testing)."""

from __future__ import annotations

import pytest

from logarchive.testing.servers import LoopbackServer
from logarchive_rest.testing import TrainingAPI, WorkflowAPI


@pytest.fixture
def training(loopback: LoopbackServer) -> TrainingAPI:
    api = TrainingAPI()
    loopback.handler = api
    return api


@pytest.fixture
def workflows(loopback: LoopbackServer) -> WorkflowAPI:
    api = WorkflowAPI()
    loopback.handler = api
    return api

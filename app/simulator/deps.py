"""FastAPI dependencies: the simulator's state and notifier, kept on the ASGI app."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from app.simulator.delivery import Notifier
from app.simulator.state import SimulatorState


async def get_state(request: Request) -> SimulatorState:
    return cast(SimulatorState, request.app.state.simulator)


async def get_notifier(request: Request) -> Notifier:
    return cast(Notifier, request.app.state.notifier)


State = Annotated[SimulatorState, Depends(get_state)]
NotifierDep = Annotated[Notifier, Depends(get_notifier)]

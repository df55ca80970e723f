"""The App Store simulator: Apple's App Store Server API and notifications, with its own chain.

See ``app.simulator.apple_api`` for the paths it serves, ``ratelimit`` for Apple's limits,
``persistence`` for ``--state-file`` and ``app.simulator.server`` to run it. It imports nothing
else from ``app``.
"""

from app.simulator.application import create_app
from app.simulator.state import SimulatorState

__all__ = ["SimulatorState", "create_app"]

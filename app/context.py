"""What a running service holds: one typed object, built once at start by `app.runtime`.

Routers take it through `app.api.deps.Ctx`; job handlers are bound to it. Every part is there
from the start (nothing optional to check), and nothing else holds state that requests or jobs
share.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.activity.tally import Tally
from app.admin.tokens import PublisherTokens
from app.apple.gateway import AppleGateway
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.jobs.worker import Foreground, Waker
from app.metrics import AtMostEvery
from app.security import SecretBox, SigningKey
from app.sessions import SessionSigner, SignInLimiter
from app.webhooks.delivery import WebhookSender


@dataclass(frozen=True)
class Context:
    settings: Settings
    clock: Clock
    db: Database
    secrets: SecretBox
    signing_key: SigningKey
    apple: AppleGateway
    webhooks: WebhookSender
    waker: Waker
    foreground: Foreground
    tokens: PublisherTokens
    gauges: AtMostEvery  # when /metrics last read the database's gauges
    activity: Tally
    sessions: SessionSigner
    sign_ins: SignInLimiter

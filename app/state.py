"""What a running API holds: settings, definitions, database, publisher, tokens, limiter,
the counts of refused requests and the group commit of new events.

One :class:`HeraldState` lives in ``app.extensions["herald"]``. Its
``definitions`` are swapped whole (``state.definitions = Definitions.load(...)``)
when ``herald dev`` reloads workflow files; a request reads the attribute once
and keeps that snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Tokens
from app.groupcommit import GroupCommit
from app.publish import Publisher
from app.ratelimit import RateLimiter
from app.refusals import Refusals
from workflows.registry import Definitions
from workflows.settings import Settings

EXTENSION = "herald"


@dataclass
class HeraldState:
    """Everything the API's requests share; built once by ``create_app``."""

    settings: Settings
    definitions: Definitions
    engine: Engine
    sessions: sessionmaker[Session]
    publisher: Publisher
    tokens: Tokens
    limiter: RateLimiter
    #: 401 and 429 refusals, counted rather than audited one row each
    refusals: Refusals = field(default_factory=Refusals)
    #: the new events of concurrent requests, inserted a group per commit
    group_commit: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.group_commit = GroupCommit(self.engine, self.publisher.dispatch_each)

    def init_app(self, app: Flask) -> None:
        """Attach this state to ``app``."""
        app.extensions[EXTENSION] = self


def state() -> HeraldState:
    """The state of the app handling the current request."""
    found: HeraldState = current_app.extensions[EXTENSION]
    return found

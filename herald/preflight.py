"""The check the commands make before they start: the schema is migrated, the definitions load.

``herald serve``, ``herald worker`` and ``herald sweep`` refuse to start on a
database that is not at this code's newest migration (the fix: ``herald db
upgrade``) or on definitions that do not load (every problem is reported), so a
bad deployment fails at once with a message, not on the first request or step.
``herald dev`` migrates its own database once it holds its port, so it only
loads the definitions. :func:`preflight` only raises; each command words the
refusal for its own users.
"""

from __future__ import annotations

from workflows.registry import Definitions
from workflows.settings import Settings
from workflows.store import db


def preflight(settings: Settings, *, schema: bool = True) -> Definitions:
    """The project's definitions, after checking that the schema is migrated.

    Raises :class:`~workflows.errors.SchemaNotMigrated` or
    :class:`~workflows.errors.DatabaseUnavailable` for the database (unless
    ``schema`` is false), :class:`~workflows.errors.DefinitionError` carrying
    every problem for the definitions.
    """
    if schema:
        engine = db.make_engine(settings.database_url, pool_size=1)
        try:
            db.check_schema(engine)
        finally:
            engine.dispose()
    return Definitions.load(settings.project_dir)

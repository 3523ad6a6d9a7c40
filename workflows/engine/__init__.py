"""The engine core: the only code that changes the state of an execution and its steps.

Each function takes the caller's session, changes rows inside the caller's
transaction, and returns what must be published once that transaction has
committed (:mod:`~workflows.engine.messages`); the engine itself never
publishes, and imports neither Flask nor Celery. One lock order everywhere:
an execution's row before any of its steps' rows.

- :mod:`~workflows.engine.dispatch`: create an accepted event's executions, once.
- :mod:`~workflows.engine.claim`: claim a step for one attempt.
- :mod:`~workflows.engine.attempt`: what an attempt produced, in every way it can end.
- :mod:`~workflows.engine.progress`: settle an attempt, advance through
  :func:`workflows.transitions.decide`, finish, give up.
- :mod:`~workflows.engine.recovery`: requeue lost and late work (the sweep's pass).
- :mod:`~workflows.engine.control`: cancel, resume from the failed step.
"""

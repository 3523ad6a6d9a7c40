"""herald's workflow language and engine core.

The model, the loader, the trigger registry, templates, the transition function
and the state store. Nothing in this package imports Flask or Celery.
"""

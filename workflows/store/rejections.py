"""Rejections past their time: pruned in batches, oldest first.

A rejection row (400/403/409/413/415/422) is kept ``HERALD_REJECTION_TTL``
seconds (7 days by default) for audit. :func:`prune_rejections` deletes at most
``limit`` of those older than ``before`` per call, so that one call is a short
transaction whatever has piled up; the sweep calls it until it returns less than
``limit``. The caller owns the transaction, as everywhere in the store.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from workflows.store.models import Rejection


def prune_rejections(session: Session, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` rejections recorded before ``before``, oldest first; how many.

    On PostgreSQL rows another pruner holds are skipped (``SKIP LOCKED``), so two
    sweeps pruning at once neither wait for each other nor delete a row twice.
    """
    if limit < 1:
        return 0
    oldest = (
        select(Rejection.id)
        .where(Rejection.at < before)
        .order_by(Rejection.at, Rejection.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = session.execute(
        delete(Rejection)
        .where(Rejection.id.in_(oldest))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]

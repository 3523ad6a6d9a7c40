"""Executions read and control endpoints (owned by the engine work; placeholder)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("executions", __name__)

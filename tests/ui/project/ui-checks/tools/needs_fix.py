"""Fail until the ``fix`` file exists (unless ``optional``), so that a retry can succeed."""

from pathlib import Path


def run(input):
    fixed = Path(input["fix"]).exists()
    if not fixed and not input.get("optional"):
        raise RuntimeError(f"{input['fix']} does not exist yet")
    return {"fixed": fixed}

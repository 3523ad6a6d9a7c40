"""Wait until the ``release`` file exists (a minute at most), so the step is running meanwhile."""

import time
from pathlib import Path


def run(input):
    release = Path(input["release"])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"released": release.exists()}

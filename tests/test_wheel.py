"""The wheel works without the checkout: installed in a fresh virtual environment,
its ``herald db upgrade`` finds the migrations inside the package and migrates Postgres.

The wheel is built from a copy of the sources (so no stale ``build/`` of the
checkout can leak into it) and installed with ``--no-deps``; the dependencies
come from this project's environment through a ``.pth`` line. A directory
added that way does not run its own ``.pth`` files, so the editable install of
the checkout stays out and ``import workflows`` must resolve to the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from workflows.store import db

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
#: what the Dockerfile copies to build the image: the same sources make the same wheel
SOURCES = ("pyproject.toml", "README.md", "herald", "app", "workers", "workflows")


def run(argv: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` outside this interpreter's environment; fail the test with its output."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """herald's wheel, built from a copy of the sources."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    python = sys.executable
    run([python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", source, "-w", tmp], tmp)
    [built] = tmp.glob("herald-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed, borrowing our dependencies."""
    home = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", home], home.parent)
    python = home / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel], home)
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], home)
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(purelib.stdout.strip(), "herald-deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    return home


def test_the_wheel_carries_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = ROOT / "workflows" / "migrations"
    shipped = {
        path.relative_to(ROOT).as_posix()
        for path in migrations.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {"workflows/migrations/env.py", "workflows/migrations/script.py.mako"} <= shipped
    assert any(name.startswith("workflows/migrations/versions/") for name in shipped)
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)}"


def test_the_installed_packages_are_the_wheel_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    python = venv / "bin" / "python"
    where = run(
        [
            python,
            "-c",
            "import herald, workflows; print(workflows.__file__); print(herald.__file__)",
        ],
        tmp_path,
    )
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to(venv.resolve()), where.stdout
        assert not Path(line).resolve().is_relative_to(ROOT), where.stdout


def test_herald_db_upgrade_from_the_wheel_migrates_postgres(
    venv: Path, empty_database: str, tmp_path: Path
) -> None:
    result = run(
        [venv / "bin" / "herald", "db", "upgrade"], tmp_path, HERALD_DATABASE_URL=empty_database
    )

    assert "database migrated to head" in result.stdout
    engine = create_engine(db.normalize_url(empty_database))
    try:
        with engine.connect() as conn:
            revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert list(revisions) == [db.head_revision()]
    finally:
        engine.dispose()

"""The application's `api` package for in-process API tests, whatever else is called `api`.

tests/api is a test package also named `api`; once pytest has imported it (or whenever `tests/` comes first
on sys.path), `import api` gives the test package, not the application's. `app_api()` imports the
application's package from the repository root for the duration of a test and then puts back whatever
was there, so both kinds of tests run in any order.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]


def _is_app_api(module) -> bool:
    return module is not None and Path(module.__file__).resolve().parent == ROOT / "api"


@contextlib.contextmanager
def app_api() -> Iterator[SimpleNamespace]:
    """Yields the application's api.app, api.auth and api.problems modules."""
    if _is_app_api(sys.modules.get("api")) or (ROOT / "api" / "__init__.py").resolve() == _first_api_on_path():
        yield _modules()
        return
    shadow = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "api" or k.startswith("api.")}
    sys.path.insert(0, str(ROOT))
    try:
        yield _modules()
    finally:
        sys.path.remove(str(ROOT))
        for k in [k for k in sys.modules if k == "api" or k.startswith("api.")]:
            del sys.modules[k]
        sys.modules.update(shadow)


def _modules() -> SimpleNamespace:
    return SimpleNamespace(
        app=importlib.import_module("api.app"),
        auth=importlib.import_module("api.auth"),
        problems=importlib.import_module("api.problems"),
    )


def _first_api_on_path() -> Path | None:
    for entry in sys.path:
        candidate = Path(entry or ".").resolve() / "api" / "__init__.py"
        if candidate.is_file():
            return candidate.resolve()
    return None

"""Points the oxide_* fixtures of oxide-queue's pytest plugin at the shop (see docs/testing.md).

``shop.app`` builds its App when first imported, reading ``./config``, as
``oxide --app shop.app:app`` does when run from this directory. The tests
import shop modules that import it, so it is imported here first, from this
directory, whichever directory pytest was started in. pytest puts this
directory on ``sys.path`` (it holds a conftest.py and no ``__init__.py``), so
``import shop`` works from the repository root too.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import pytest

from oxide import App

SHOP = Path(__file__).resolve().parent

with contextlib.chdir(SHOP):
    shop_app = importlib.import_module("shop.app").app


@pytest.fixture
def oxide_app() -> App:
    if not isinstance(shop_app, App) or shop_app.config.root != SHOP:
        pytest.fail(f"shop.app was imported before this conftest and did not read {SHOP / 'config'}")
    return shop_app

"""An async listener's timeout (asyncio.timeout -> JobTimedOut) and --app's MODULE:ATTR resolution."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oxide import App
from oxide.app import load_app
from oxide.errors import ConfigError, JobTimedOut
from oxide.events import run_handler


class Sleeper:
    def __init__(self, secs: float) -> None:
        self.secs = secs

    async def handle(self, event: object) -> str:
        await asyncio.sleep(self.secs)
        return f"slept {self.secs}"


def test_an_async_listener_past_its_timeout_is_cancelled_as_job_timed_out() -> None:
    with pytest.raises(JobTimedOut, match=r"longer than its 0\.01s timeout"):
        run_handler(Sleeper(60.0), object(), 0.01)  # type: ignore[arg-type]


def test_an_async_listener_within_its_timeout_returns_its_result() -> None:
    assert run_handler(Sleeper(0.0), object(), 60.0) == "slept 0.0"  # type: ignore[arg-type]


def test_a_listeners_own_timeout_error_is_not_reported_as_the_job_timeout() -> None:
    class OwnTimeout:
        async def handle(self, event: object) -> None:
            raise TimeoutError("the listener's own HTTP call")

    with pytest.raises(TimeoutError, match="own HTTP call"):
        run_handler(OwnTimeout(), object(), 60.0)


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("OXIDE_CONFIG_DIR", raising=False)
    yield tmp_path
    for name in ("appmod_instance", "appmod_factory", "appmod_wrong", "appmod_broken"):
        sys.modules.pop(name, None)


def test_load_app_takes_an_app_or_a_factory(modules: Path) -> None:
    (modules / "appmod_instance.py").write_text("from oxide import App\napp = App()\n")
    (modules / "appmod_factory.py").write_text("from oxide import App\ndef make():\n    return App()\n")
    assert isinstance(load_app("appmod_instance:app"), App)
    made = load_app("appmod_factory:make")
    assert isinstance(made, App)


@pytest.mark.parametrize("spec", ["nocolon", ":app", "module:", ""])
def test_load_app_wants_module_colon_attr(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"--app: expected MODULE:ATTR \(for example myapp.main:app\), got "):
        load_app(spec)


def test_load_app_names_the_module_it_cannot_import(modules: Path) -> None:
    with pytest.raises(ConfigError, match=r"--app appmod_missing:app: cannot import 'appmod_missing'"):
        load_app("appmod_missing:app")
    (modules / "appmod_broken.py").write_text("import a_module_that_is_not_there\n")
    with pytest.raises(
        ConfigError, match=r"cannot import 'appmod_broken': No module named 'a_module_that_is_not_there'"
    ):
        load_app("appmod_broken:app")


def test_load_app_names_the_missing_attribute_and_the_wrong_type(modules: Path) -> None:
    (modules / "appmod_wrong.py").write_text("app = 42\ndef make():\n    return 'not an app'\n")
    with pytest.raises(ConfigError, match=r"module 'appmod_wrong' has no attribute 'other'"):
        load_app("appmod_wrong:other")
    with pytest.raises(ConfigError, match=r"expected an oxide.App or a callable returning one, got int"):
        load_app("appmod_wrong:app")
    with pytest.raises(ConfigError, match=r"got str"):
        load_app("appmod_wrong:make")

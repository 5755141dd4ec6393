"""The pytest plugin: loaded by entry point, fixtures prefixed, pointed at the app by ini option or fixture."""

from __future__ import annotations

import inspect
import textwrap

import pytest

from oxide.testing import pytest_plugin

pytest_plugins = ["pytester"]

APP_MODULE = """
from dataclasses import dataclass
from oxide import App, Event, Mode
from oxide.config import Config, ConnectionConfig, DatabaseConfig
from pathlib import Path

@dataclass
class Signed(Event):
    event_name = "plug.signed"
    n: int

class Greet:
    def handle(self, event):
        if event.n < 0:
            raise ValueError("negative")

def make():
    config = Config(
        config_dir=Path("config"), root=Path(), default="redis",
        connections={"redis": ConnectionConfig(name="redis", driver="redis", url="redis://127.0.0.1:1/0")},
        failed_driver="none", database=DatabaseConfig("sqlite", {}),
    )
    app = App(config=config)
    app.listen(Signed, Greet, Mode.queue("redis").on_queue("greetings"))
    return app

app = make()
"""

USES_EVERY_FIXTURE = """
from oxide.drivers.redis import RedisDriver
from oxide.testing.drivers import installed
from plugapp import Greet, Signed

def test_queue_fake(oxide_app, oxide_queue_fake, oxide_work, oxide_failed_store):
    oxide_app.dispatch(Signed(n=1))
    oxide_app.dispatch(Signed(n=-1))
    oxide_queue_fake.assert_pushed_on("greetings", Greet, times=2)
    result = oxide_work(failed=oxide_failed_store)
    assert [j.status for j in result.jobs] == ["done", "failed"]
    assert [r.payload for r in oxide_failed_store.all()] == ['{"n":-1}']

def test_fakeredis(oxide_app, oxide_fakeredis, oxide_work):
    oxide_app.dispatch(Signed(n=1))
    assert oxide_fakeredis.size("greetings") == 1
    assert [j.status for j in oxide_work().jobs] == ["done"]

def test_event_fake(oxide_app, oxide_event_fake):
    oxide_app.dispatch(Signed(n=1))
    oxide_event_fake.assert_dispatched(Signed)

def test_everything_was_put_back(oxide_app):
    assert installed(oxide_app) == {}
    assert "dispatch" not in vars(oxide_app)
    assert isinstance(oxide_app.driver("redis"), RedisDriver)
"""


def test_the_plugin_is_loaded_by_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--trace-config", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*oxide.testing.pytest_plugin*"])


def test_every_fixture_works_and_is_undone_after_its_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(plugapp=APP_MODULE, test_uses=USES_EVERY_FIXTURE)
    pytester.makeini("[pytest]\noxide_app = plugapp:app\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=4)


def test_the_app_may_come_from_a_conftest_fixture_instead(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(plugapp=APP_MODULE, test_uses=USES_EVERY_FIXTURE)
    pytester.makeconftest(
        "import pytest\nimport plugapp\n\n@pytest.fixture\ndef oxide_app():\n    return plugapp.app\n"
    )
    pytester.runpytest().assert_outcomes(passed=4)


def test_the_ini_option_may_name_a_callable_returning_the_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(plugapp=APP_MODULE, test_uses=USES_EVERY_FIXTURE)
    pytester.makeini("[pytest]\noxide_app = plugapp:make\n")
    pytester.runpytest().assert_outcomes(passed=4)


def test_without_an_app_the_fixtures_say_how_to_name_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_it(oxide_queue_fake):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            '*the oxide_* fixtures need your application: set oxide_app = "MODULE:ATTR" under '
            "[[]tool.pytest.ini_options] in pyproject.toml*or define an oxide_app fixture in conftest.py*"
        ]
    )


def test_a_wrong_ini_option_is_reported_with_its_value(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_it(oxide_app):\n    pass\n")
    pytester.makeini("[pytest]\noxide_app = nosuchmodule:app\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ini option oxide_app = 'nosuchmodule:app': --app nosuchmodule:app: cannot import 'nosuchmodule'*"]
    )


def test_the_plugin_defines_only_prefixed_fixtures() -> None:
    fixtures = [
        name for name, value in vars(pytest_plugin).items() if "FixtureFunctionDefinition" in type(value).__name__
    ]
    assert sorted(fixtures) == [
        "oxide_app",
        "oxide_event_fake",
        "oxide_failed_store",
        "oxide_fakeredis",
        "oxide_queue_fake",
        "oxide_work",
    ]
    assert all(name.startswith("oxide_") for name in fixtures)


def test_a_projects_own_fixtures_of_similar_names_are_untouched(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def app():
                return "mine"

            @pytest.fixture
            def fake_queue():
                return "mine too"
            """
        )
    )
    pytester.makepyfile(test_it="def test_it(app, fake_queue):\n    assert (app, fake_queue) == ('mine', 'mine too')\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_work_protocol_matches_the_drain_it_wraps() -> None:
    from oxide.testing import drain

    work = inspect.signature(pytest_plugin.Work.__call__)
    wrapped = inspect.signature(drain)
    assert list(work.parameters)[1:] == list(wrapped.parameters)[1:]  # drain's app is the fixture's

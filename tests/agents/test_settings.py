"""One source of configuration: every field of the method reachable through the environment and
through the `run` command's flags."""

import pytest

from agents.cli import _method, build_parser
from agents.settings import Settings
from pipeline.config import MethodConfig


def changed(name, field):
    """A valid value for `name` other than its default."""
    default = field.default
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1 if name != "frames" else default - 1
    return round(default * 0.9, 4) if default else 0.5


FIELDS = list(MethodConfig.model_fields.items())


@pytest.mark.parametrize("name, field", FIELDS, ids=[n for n, _ in FIELDS])
def test_every_method_field_through_the_environment(monkeypatch, name, field):
    value = changed(name, field)
    monkeypatch.setenv(f"ALERTANIM_METHOD__{name.upper()}", str(value).lower()
                       if isinstance(value, bool) else str(value))
    method = Settings().method
    assert getattr(method, name) == value
    assert method.fingerprint() != MethodConfig().fingerprint()


@pytest.mark.parametrize("name, field", FIELDS, ids=[n for n, _ in FIELDS])
def test_every_method_field_through_the_run_command(name, field):
    value = changed(name, field)
    flag = "--" + name.replace("_", "-")
    argv = ["run", "x", *([flag if value else f"--no-{flag[2:]}"] if isinstance(value, bool)
                          else [flag, str(value)])]
    assert getattr(_method(build_parser().parse_args(argv)), name) == value


def test_the_run_command_and_the_worker_default_to_the_same_method():
    assert _method(build_parser().parse_args(["run", "x"])) == Settings().method == MethodConfig()


def test_an_out_of_range_method_setting_is_refused(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("ALERTANIM_METHOD__STRENGTH", "1.5")
    with pytest.raises(ValidationError, match="strength"):
        Settings()


def test_an_unknown_security_protocol_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="security_protocol"):
        Settings(security_protocol="PLAINTEXTT")


def test_the_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    import pipeline

    assert pipeline.__version__ == version("alertanim")

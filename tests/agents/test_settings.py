"""One source of configuration: every field of the method reachable through the environment and
through the `run` command's flags."""

import pytest

from alertanim.agents.cli import _method, build_parser
from alertanim.agents.settings import Settings
from alertanim.pipeline.config import MethodConfig


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

    import alertanim.pipeline

    assert alertanim.pipeline.__version__ == version("alertanim")


# -- Kafka security ---------------------------------------------------------------------------

SASL = {"security_protocol": "SASL_SSL", "sasl_username": "svc", "sasl_password": "s3cret-pw"}


def test_sasl_plain_over_plaintext_is_refused_unless_allowed():
    from pydantic import ValidationError

    plain = {**SASL, "security_protocol": "SASL_PLAINTEXT"}
    with pytest.raises(ValidationError, match="allow_plaintext_sasl") as refused:
        Settings(**plain)
    assert "s3cret-pw" not in str(refused.value)
    assert Settings(**plain, allow_plaintext_sasl=True).security_protocol == "SASL_PLAINTEXT"
    # SCRAM never sends the password itself: no opt-in needed
    assert Settings(**plain, sasl_mechanism="SCRAM-SHA-256").sasl_mechanism == "SCRAM-SHA-256"


def test_sasl_plain_over_plaintext_is_refused_from_the_environment(monkeypatch):
    from pydantic import ValidationError

    for key, value in {**SASL, "security_protocol": "SASL_PLAINTEXT"}.items():
        monkeypatch.setenv(f"ALERTANIM_{key.upper()}", value)
    with pytest.raises(ValidationError, match="SASL PLAIN over SASL_PLAINTEXT"):
        Settings()
    monkeypatch.setenv("ALERTANIM_ALLOW_PLAINTEXT_SASL", "true")
    assert Settings().allow_plaintext_sasl


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
@pytest.mark.parametrize("missing", [("sasl_username",), ("sasl_password",),
                                     ("sasl_username", "sasl_password")])
def test_sasl_needs_a_username_and_a_password(protocol, missing):
    from pydantic import ValidationError

    given = {**SASL, "security_protocol": protocol, "allow_plaintext_sasl": True}
    for name in missing:
        given.pop(name)
    with pytest.raises(ValidationError) as refused:
        Settings(**given)
    message = str(refused.value)
    assert all(name in message for name in missing), message
    assert "s3cret-pw" not in message


def test_an_empty_sasl_password_is_missing():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sasl_password"):
        Settings(**{**SASL, "sasl_password": ""})


def test_plaintext_needs_no_credentials():
    assert Settings().kafka_client_kwargs() == {"bootstrap_servers": "localhost:9092",
                                                "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("extra", [{"ssl_certfile": "c.pem"}, {"ssl_keyfile": "k.pem"},
                                   {"ssl_password": "x"}])
def test_a_client_certificate_needs_tls(extra):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="does not use TLS"):
        Settings(**extra)
    with pytest.raises(ValidationError, match="does not use TLS"):
        Settings(**{**SASL, "security_protocol": "SASL_PLAINTEXT", "allow_plaintext_sasl": True},
                 **extra)


@pytest.mark.parametrize("extra", [{"ssl_keyfile": "k.pem"}, {"ssl_password": "x"}])
def test_a_key_or_its_password_needs_the_certificate(extra):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="set ssl_certfile"):
        Settings(security_protocol="SSL", **extra)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from deploy.local.harness import make_ca, make_cert

    root = tmp_path_factory.mktemp("pki")
    ca = make_ca(root)
    cert, key = make_cert(root, "client", ca, key_password="key-pw")
    return {"ca": ca[0], "cert": cert, "key": key}


def test_sasl_ssl_client_kwargs_carry_the_ca_the_client_certificate_and_the_login(pki):
    import ssl

    settings = Settings(**SASL, ssl_cafile=str(pki["ca"]), ssl_certfile=str(pki["cert"]),
                        ssl_keyfile=str(pki["key"]), ssl_password="key-pw")
    kw = settings.kafka_client_kwargs()
    context = kw.pop("ssl_context")
    assert kw == {"bootstrap_servers": "localhost:9092", "security_protocol": "SASL_SSL",
                  "sasl_mechanism": "PLAIN", "sasl_plain_username": "svc",
                  "sasl_plain_password": "s3cret-pw"}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "alertanim test CA"),),)]
    # the secrets stay out of the settings' own text
    assert "s3cret-pw" not in repr(settings) and "key-pw" not in repr(settings)


def test_a_wrong_key_password_fails_to_load(pki):
    import ssl

    settings = Settings(security_protocol="SSL", ssl_cafile=str(pki["ca"]),
                        ssl_certfile=str(pki["cert"]), ssl_keyfile=str(pki["key"]),
                        ssl_password="not-it")
    with pytest.raises(ssl.SSLError):
        settings.kafka_client_kwargs()


def test_the_faust_app_gets_the_same_tls_and_login(pki):
    import ssl

    import faust

    from alertanim.agents.app import _credentials

    sasl = _credentials(Settings(**SASL, ssl_cafile=str(pki["ca"]),
                                 ssl_certfile=str(pki["cert"]), ssl_keyfile=str(pki["key"]),
                                 ssl_password="key-pw"))
    assert isinstance(sasl, faust.SASLCredentials)
    assert sasl.protocol.value == "SASL_SSL" and sasl.mechanism.value == "PLAIN"
    assert (sasl.username, sasl.password) == ("svc", "s3cret-pw")
    assert "s3cret-pw" not in repr(sasl)
    assert isinstance(sasl.ssl_context, ssl.SSLContext) and sasl.ssl_context.get_ca_certs()
    scram = _credentials(Settings(**{**SASL, "security_protocol": "SASL_PLAINTEXT"},
                                  sasl_mechanism="SCRAM-SHA-512"))
    assert scram.protocol.value == "SASL_PLAINTEXT" and scram.ssl_context is None
    assert scram.mechanism.value == "SCRAM-SHA-512"
    tls = _credentials(Settings(security_protocol="SSL", ssl_cafile=str(pki["ca"])))
    assert isinstance(tls, ssl.SSLContext)
    assert _credentials(Settings()) is None


def test_the_worker_refuses_bad_settings_in_one_line_without_the_secret(monkeypatch, capsys):
    from alertanim.agents.cli import main
    from alertanim.agents.stream_cli import EXIT_SETTINGS

    for key, value in {**SASL, "security_protocol": "SASL_PLAINTEXT"}.items():
        monkeypatch.setenv(f"ALERTANIM_{key.upper()}", value)
    assert main(["worker", "--stages", "ingest"]) == EXIT_SETTINGS
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "allow_plaintext_sasl" in err and "s3cret-pw" not in err


def test_the_worker_names_a_missing_ca_file_before_it_connects(monkeypatch, capsys, tmp_path):
    from alertanim.agents.cli import main
    from alertanim.agents.stream_cli import EXIT_CONFIG

    for key, value in {**SASL, "ssl_cafile": str(tmp_path / "no-ca.pem"),
                       "broker": "kafka://127.0.0.1:1"}.items():
        monkeypatch.setenv(f"ALERTANIM_{key.upper()}", value)
    assert main(["worker", "--stages", "ingest"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "ssl_cafile" in err and "no-ca.pem" in err and "s3cret-pw" not in err

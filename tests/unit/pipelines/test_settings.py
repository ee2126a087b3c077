import pytest

from pipelines.settings import CommonSettings, ConfigError, load_settings


def test_defaults_point_at_the_local_stack(monkeypatch):
    for var in ("FLEET_KAFKA_BOOTSTRAP_SERVERS", "FLEET_SCHEMA_REGISTRY_URL", "FLEET_TOPIC_PREFIX"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings(CommonSettings)
    assert s.kafka_client_config() == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "PLAINTEXT",
    }
    assert s.topic("robot.status") == "robot.status"


def test_bad_values_name_the_variable_and_the_reason(monkeypatch):
    monkeypatch.setenv("FLEET_METRICS_PORT", "99999")
    monkeypatch.setenv("FLEET_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as err:
        load_settings(CommonSettings)
    text = str(err.value)
    assert "FLEET_METRICS_PORT: Input should be less than or equal to 65535" in text
    assert "FLEET_LOG_LEVEL" in text


def test_sasl_ssl_reaches_every_client(monkeypatch, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("FLEET_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FLEET_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FLEET_KAFKA_SASL_USERNAME", "fleet")
    monkeypatch.setenv("FLEET_KAFKA_SASL_PASSWORD", "s3cr3t")
    monkeypatch.setenv("FLEET_KAFKA_SSL_CA_LOCATION", str(ca))
    s = load_settings(CommonSettings)
    cfg = s.kafka_client_config()
    assert cfg["security.protocol"] == "SASL_SSL"
    assert (cfg["sasl.mechanism"], cfg["sasl.username"], cfg["sasl.password"]) == (
        "SCRAM-SHA-512",
        "fleet",
        "s3cr3t",
    )
    assert cfg["ssl.ca.location"] == str(ca)
    assert "s3cr3t" not in repr(s), "secrets never show in reprs or logs"


def test_sasl_without_credentials_is_refused(monkeypatch):
    monkeypatch.setenv("FLEET_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="kafka_sasl_mechanism is required"):
        load_settings(CommonSettings)


def test_placeholder_secret_refused_in_production(monkeypatch):
    monkeypatch.setenv("FLEET_ENVIRONMENT", "production")
    monkeypatch.setenv("FLEET_SCHEMA_REGISTRY_PASSWORD", "change-me")
    with pytest.raises(ConfigError, match="placeholder"):
        load_settings(CommonSettings)


def test_missing_ca_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEET_KAFKA_SSL_CA_LOCATION", str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="kafka_ssl_ca_location: no such file"):
        load_settings(CommonSettings)

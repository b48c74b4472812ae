from __future__ import annotations

import pytest

from settings import ConfigError, load_settings

GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1-2-abc",
    "SLACK_SIGNING_SECRET": "secret-value-123",
    "STRIPE_SECRET_KEY": "rk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_a, whsec_b",
}


def test_a_complete_environment_loads() -> None:
    s = load_settings(
        {
            **GOOD,
            "APPROVAL_THRESHOLD": "5000 USD,4500 EUR,750000 JPY",
            "REQUESTERS": "U1ABC,S2DEF",
            "APPROVALS_CHANNEL": "C0123ABC",
            "PORT": "8080",
        },
        require="web",
    )
    assert s.stripe_webhook_secrets == ("whsec_a", "whsec_b")
    assert s.approval_threshold == {"usd": 500000, "eur": 450000, "jpy": 750000}
    assert s.requesters == frozenset({"U1ABC", "S2DEF"}) and s.approvers is None
    assert s.port == 8080 and s.stripe_livemode and not s.socket_mode
    assert s.database_url is None  # embedded
    assert s.slack_api_url == "https://slack.com/api/"


def test_every_missing_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({}, require="web")
    for name in GOOD:
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SLACK_BOT_TOKEN", "xoxp-user-token", "SLACK_BOT_TOKEN should start with xoxb-"),
        ("STRIPE_SECRET_KEY", "pk_live_123", "STRIPE_SECRET_KEY should start with sk_ or rk_"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_ok,nope", "every secret should start with whsec_"),
        ("PORT", "eighty", "PORT should be a whole number"),
        ("PORT", "70000", "PORT should be between"),
        ("APPROVALS_CHANNEL", "#approvals", "channel ID like C0123456789"),
        ("APPROVERS", "U1ABC,@jane", "@jane should be user IDs"),
        ("APPROVAL_THRESHOLD", "5000", "APPROVAL_THRESHOLD"),
        ("APPROVAL_THRESHOLD", "50.5 JPY", "JPY has no decimals"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_malformed_values_are_named(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**GOOD, name: value}, require="web")
    assert says in str(err.value)


def test_secrets_never_appear_in_errors_or_repr() -> None:
    env = {**GOOD, "STRIPE_SECRET_KEY": "pk_live_SUPERSECRET", "SLACK_BOT_TOKEN": "xoxp-SUPERSECRET"}
    with pytest.raises(ConfigError) as err:
        load_settings(env, require="web")
    assert "SUPERSECRET" not in str(err.value)
    assert "secret-value-123" not in repr(load_settings(GOOD, require="web"))


def test_socket_mode_needs_the_app_token_not_the_signing_secret() -> None:
    env = {k: v for k, v in GOOD.items() if k != "SLACK_SIGNING_SECRET"}
    s = load_settings({**env, "SLACK_APP_TOKEN": "xapp-1-abc"}, require="web")
    assert s.socket_mode


def test_config_file_fills_in_and_the_environment_wins(tmp_path) -> None:
    path = tmp_path / "desk.toml"
    path.write_text('APPROVAL_THRESHOLD = "100 USD"\nPORT = 4000\nREQUESTERS = ["U1AAA", "U2BBB"]\n')
    s = load_settings({**GOOD, "REFUND_DESK_CONFIG": str(path), "PORT": "5000"}, require="web")
    assert s.approval_threshold == {"usd": 10000} and s.port == 5000
    assert s.requesters == frozenset({"U1AAA", "U2BBB"})
    path.write_text("NOT_A_SETTING = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({**GOOD, "REFUND_DESK_CONFIG": str(path)}, require="web")


def test_metrics_token_is_optional_checked_and_never_shown() -> None:
    assert load_settings(GOOD, require="web").metrics_token is None
    token = "Zm9v-0123456789-abcdef"
    s = load_settings({**GOOD, "METRICS_TOKEN": token}, require="web")
    assert s.metrics_token == token and token not in repr(s)
    for bad in ("short", "has spaces in the middle of it", "ünicode-0123456789abcdef"):
        with pytest.raises(ConfigError, match="METRICS_TOKEN should be at least 16 printable ASCII") as err:
            load_settings({**GOOD, "METRICS_TOKEN": bad}, require="web")
        assert bad not in str(err.value)

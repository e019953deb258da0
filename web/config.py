"""The web config section (``web: {listen, auth}``), and ``AppConfig``: everything the web app
reads (the alerting config it shows, the backends it lists, and its own section).

``inferwatch.config.Config`` is ``AppConfig`` plus the storage section.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from alerts.config import AlertingConfig
from core.schema import ConfigModel

__all__ = ["AppConfig", "AuthConfig", "BasicUser", "WebConfig", "WebSettings"]


class BasicUser(ConfigModel):
    user: str = Field(min_length=1)
    password: str = Field(min_length=8)  # write it as ${ENV_VAR}


class AuthConfig(ConfigModel):
    """Who may see pages and API: bearer ``tokens`` (scripts) and/or ``basic`` users (browsers).
    ``/healthz`` and ``/readyz`` are always open; ``/metrics`` too unless ``protect_metrics``."""

    tokens: list[str] = Field(default_factory=list)
    basic: list[BasicUser] = Field(default_factory=list)
    protect_metrics: bool = False


class WebConfig(ConfigModel):
    listen: str = "127.0.0.1:8000"
    auth: AuthConfig = Field(default_factory=AuthConfig)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"invalid listen address {v!r}; expected host:port, e.g. 127.0.0.1:8000")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class WebSettings(ConfigModel):
    """The web app's top-level key (a part of the whole config)."""

    web: WebConfig = Field(default_factory=WebConfig)


class AppConfig(WebSettings, AlertingConfig):
    """What the web app reads: the collector's and alerting's sections, and its own."""

    def dashboard_base(self) -> str:
        """Where links in notifications point: ``external_url``, else the listen address."""
        return (self.external_url or f"http://{self.web.listen}").rstrip("/")

    def link_warning(self) -> str | None:
        """A warning when notifiers will send links nobody else can open: ``external_url`` unset
        while the listen address is loopback or a wildcard (None otherwise).

        >>> slack = {"slack": {"webhook_url": "https://hooks.slack.com/services/x"}}
        >>> AppConfig(notifiers=slack).link_warning().startswith("external_url is not set")
        True
        >>> AppConfig(notifiers=slack, external_url="https://iw.example.com").link_warning() is None
        True
        >>> AppConfig(notifiers=slack, web={"listen": "10.0.0.5:8000"}).link_warning() is None
        True
        """
        if not self.notifiers or self.external_url:
            return None
        host = self.web.listen.rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""):
            return None
        return (f"external_url is not set: links in notifications will point at http://{self.web.listen}, "
                "which other people cannot open; set external_url to the address your team reaches "
                "inferwatch at (e.g. external_url: https://inferwatch.example.com)")

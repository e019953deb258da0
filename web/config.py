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

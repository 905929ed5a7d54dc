"""Describe the running deployment from the platform's own records."""

from __future__ import annotations

from core import Platform, StashKey, service_version
from plugins.root.schemas import Family, LeftOutFamily, Links, ServiceInfo

# plugins/root/schemas.py imports nothing of core: the benchmark's bare apps load it alone.
DESCRIPTION = StashKey[ServiceInfo]("description")


def described(platform: Platform) -> ServiceInfo:
    """The deployment's description, built on the first request and kept.

    What it shows (families served, families left out and why, version, environment) is
    settled once start-up has finished, so ``GET /`` need not rebuild it per request.
    """
    plugin = platform.plugins["root"]
    info = plugin.stash.get(DESCRIPTION)
    if info is None:
        info = plugin.stash[DESCRIPTION] = _describe(platform, plugin.settings.service_name)
    return info


def _describe(platform: Platform, service_name: str) -> ServiceInfo:
    return ServiceInfo(
        name=service_name,
        version=service_version(),
        environment=platform.core.environment,
        families=[
            Family(
                name=p.name,
                version=p.version,
                description=p.info.description,
                source=p.entry.source,
            )
            for p in platform.plugins.values()
        ],
        left_out=[
            LeftOutFamily(name=left.name, status=left.status, reason=left.reason)
            for left in platform.left_out.values()
        ],
        links=Links(openapi="/openapi.json", docs="/docs", health="/healthz", ready="/readyz"),
    )

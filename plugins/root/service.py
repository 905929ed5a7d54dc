"""Describe the running deployment from the platform's own records."""

from __future__ import annotations

from core import Platform, service_version
from plugins.root.schemas import Family, LeftOutFamily, Links, ServiceInfo


def describe(platform: Platform, service_name: str) -> ServiceInfo:
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

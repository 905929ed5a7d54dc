"""Time ``create_app`` and the OpenAPI build inside it, in a fresh interpreter.

``core.openapi.build_spec`` is called by ``create_app`` exactly once. To time
that portion with the real arguments, the name ``build_spec`` in ``core.app``
is wrapped by a timer for the duration of this process (no file changes).
The first ``create_app`` pays for importing every family; later calls show
the steady cost. Prints one JSON line. Settings come from the environment,
as for ``imperfect serve``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from typing import Any

started = time.perf_counter()
import core.app  # noqa: E402  (timed: the cold import of the platform)

import_seconds = time.perf_counter() - started


def main(repeat: int) -> dict[str, Any]:
    """``repeat`` calls of ``create_app``, each with its ``build_spec`` portion."""
    spec_seconds: list[float] = []
    original = core.app.build_spec

    @functools.wraps(original)
    def timed_build_spec(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spec_seconds.append(time.perf_counter() - start)

    core.app.build_spec = timed_build_spec
    app_seconds: list[float] = []
    app = None
    for _ in range(repeat):
        start = time.perf_counter()
        app = core.app.create_app()
        app_seconds.append(time.perf_counter() - start)
    assert app is not None
    spec = core.app.runtime_of(app).spec
    assert spec is not None
    operations = sum(
        1
        for item in spec.document.get("paths", {}).values()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
    return {
        "import_s": import_seconds,
        "create_app_first_s": app_seconds[0],
        "create_app_warm_s": statistics.median(app_seconds[1:] or app_seconds),
        "build_spec_first_s": spec_seconds[0],
        "build_spec_warm_s": statistics.median(spec_seconds[1:] or spec_seconds),
        "repeat": repeat,
        "spec_bytes": len(spec.body),
        "paths": len(spec.document.get("paths", {})),
        "operations": operations,
        "schemas": len(spec.document.get("components", {}).get("schemas", {})),
        "plugins": sorted(core.app.runtime_of(app).platform.plugins),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    print("BENCH_JSON " + json.dumps(main(parser.parse_args().repeat)))

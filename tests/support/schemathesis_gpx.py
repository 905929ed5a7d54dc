"""What a valid ``application/gpx+xml`` body is, for schemathesis.

The spec can only type an uploaded GPX file as a body of that media type (OpenAPI has no
schema for XML documents), so schemathesis, left alone, sends arbitrary bytes as "valid"
uploads and reports their 400 as a schema-valid request rejected. Registering this strategy
makes it fuzz real GPX tracks instead: ``tests/clients/schemathesis_hooks.py`` imports
this module.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from tests.support.gpx import track

POINT = st.tuples(
    st.floats(min_value=-89.9, max_value=89.9, allow_nan=False).map(lambda v: round(v, 6)),
    st.floats(min_value=-179.9, max_value=179.9, allow_nan=False).map(lambda v: round(v, 6)),
    st.floats(min_value=-400, max_value=8800, allow_nan=False).map(lambda v: round(v, 1)),
)
NAME = st.text(alphabet=st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=40)
GPX_BODIES = st.builds(track, st.lists(POINT, min_size=2, max_size=50), NAME)

schemathesis.openapi.media_type("application/gpx+xml", GPX_BODIES)

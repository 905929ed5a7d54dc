"""Point firebase-admin at the benchmark's fake auth backend instead of Google.

firebase-admin has no setting for either URL outside emulator mode, so this sets the
two module attributes it reads them from:

- ``firebase_admin._token_gen.ID_TOKEN_CERT_URI``: the certificates ``verify_id_token``
  checks signatures with (read when an app's auth client is first built, so this must run
  before the first verification);
- ``firebase_admin._user_mgt.UserManager.ID_TOOLKIT_URL``: the Identity Toolkit base of
  ``get_user`` (``POST {url}/projects/{project}/accounts:lookup``), which
  ``verify_id_token(check_revoked=True)`` calls, as does the platform's revocation lookup.

Read from ``BENCH_FIREBASE_CERTS_URL`` and ``BENCH_IDENTITY_TOOLKIT_URL``; unset, nothing
changes. The platform itself is pointed at the certificates by its own setting,
``IMPERFECT_FIREBASE_CERTS_URL``.
"""

from __future__ import annotations

import os


def point_firebase_admin() -> None:
    certs = os.environ.get("BENCH_FIREBASE_CERTS_URL")
    toolkit = os.environ.get("BENCH_IDENTITY_TOOLKIT_URL")
    if not (certs or toolkit):
        return
    from firebase_admin import _token_gen, _user_mgt

    if certs:
        _token_gen.ID_TOKEN_CERT_URI = certs
    if toolkit:
        _user_mgt.UserManager.ID_TOOLKIT_URL = toolkit

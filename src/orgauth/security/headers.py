"""Security headers (docs/SECURITY.md): which headers every response gets, by path and settings."""

from __future__ import annotations

from orgauth.settings import OrgAuthSettings

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The docs pages load their scripts and styles from orgauth's own static route.
DOCS_CSP_STRICT = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# `relaxed` also lets the docs use the usual CDN assets.
_CDNS = "https://cdn.jsdelivr.net https://unpkg.com"
DOCS_CSP_RELAXED = (
    f"default-src 'none'; script-src 'self' 'unsafe-inline' {_CDNS}; "
    f"style-src 'self' 'unsafe-inline' {_CDNS} https://fonts.googleapis.com; "
    "img-src 'self' data: https:; font-src 'self' data: https://fonts.gstatic.com; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=()"
)
HSTS = "max-age=63072000; includeSubDomains"


def _encode(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


class SecurityHeaders:
    """Precomputed header sets: one for API responses, one for the docs pages."""

    def __init__(self, settings: OrgAuthSettings, docs_paths: frozenset[str]) -> None:
        common = [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("permissions-policy", PERMISSIONS_POLICY),
            ("cross-origin-opener-policy", "same-origin"),
        ]
        if settings.is_production:
            common.append(("strict-transport-security", HSTS))
        api, docs = list(common), list(common)
        if settings.csp_mode != "disabled":
            api.append(("content-security-policy", API_CSP))
            docs_csp = DOCS_CSP_STRICT if settings.csp_mode == "strict" else DOCS_CSP_RELAXED
            docs.append(("content-security-policy", docs_csp))
        self.api = _encode(api)
        self.docs = _encode(docs)
        self._docs_paths = docs_paths

    def for_path(self, path: str) -> list[tuple[bytes, bytes]]:
        return self.docs if path in self._docs_paths else self.api

"""Redact credentials that hide inside URLs and free text (``user:pass@`` userinfo, ``?api_key=``).

``redact_secrets`` is the one function every writer of user-supplied text applies (fingerprint,
adapter errors, config copy, results.json, report, logs), so a key pasted into ``base_url`` is
never written anywhere. It keeps everything else of a URL (host, port, path, harmless query
parameters such as ``api-version``), because those identify the endpoint.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"

# query parameter names that carry credentials (matched on the lower-cased name)
_SECRET_PARAM = re.compile(
    r"^(x[-_])?(api[-_]?key|apikey|key|token|access[-_]?token|auth[-_]?token|id[-_]?token|auth|"
    r"authorization|bearer|secret|client[-_]?secret|password|passwd|pwd|pass|sig|signature|session|"
    r"sessionid|code|jwt|credential|credentials)$",
    re.I,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# bare tokens that are credentials whatever surrounds them
_TOKEN = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{6,}|\b(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{20,}|ghp_[A-Za-z0-9]{20,}|xox[bp]-[A-Za-z0-9-]{10,})")


def redact_url(url: str) -> str:
    """``url`` with userinfo and credential-named query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # unparseable: could be anything, write nothing of it
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{quote(k, safe='-_.~')}={MASK if _SECRET_PARAM.match(k) and v else quote(v, safe='-_.~:/')}" for k, v in pairs
        )
    # a fragment can carry tokens too (OAuth implicit flow)
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_secrets(text: str) -> str:
    """``text`` (a URL or free text holding URLs) with credentials replaced by ``***``."""
    if not isinstance(text, str) or not text:
        return text
    out = _URL.sub(_redact_match, text)
    return _TOKEN.sub(lambda m: (m.group(1) + MASK) if m.group(1) else MASK, out)


def _redact_match(m: "re.Match[str]") -> str:
    url = m.group(0)
    core = url.rstrip(".,;:!?)]}")  # sentence punctuation after a URL is not part of it
    return redact_url(core) + url[len(core):]


def redact_obj(obj):  # type: ignore[no-untyped-def]
    """``redact_secrets`` applied to every string inside nested dicts, lists and tuples."""
    if isinstance(obj, str):
        return redact_secrets(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj

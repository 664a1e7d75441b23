"""The API docs (Swagger UI at /api/v1/docs/, ReDoc at /api/v1/redoc/) work offline: every asset they load
is a pinned copy served from this app's static files (drf-spectacular-sidecar), none from a CDN."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.views import serve
from django.test import RequestFactory

# Every URL a page can load: src/href attributes, url(...) in CSS, and any absolute URL in inline code.
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
ABSOLUTE = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)


@pytest.mark.parametrize(
    ("path", "bundle"),
    [
        ("/api/v1/docs/", "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"),
        ("/api/v1/redoc/", "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"),
    ],
)
def test_docs_page_loads_only_local_assets(db, client, settings, path, bundle):
    response = client.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert response["Content-Type"].startswith("text/html")

    assert ABSOLUTE.findall(page) == []  # no CDN, no web font, nothing from another host
    assets = ASSET.findall(page)
    assert settings.STATIC_URL.lstrip("/") and f"/{settings.STATIC_URL.lstrip('/')}{bundle}" in assets
    static_prefix = "/" + settings.STATIC_URL.lstrip("/")
    for url in assets:
        assert url.startswith(static_prefix), f"{path} loads {url} from outside this app's static files"
        name = url.removeprefix(static_prefix)
        assert finders.find(name), f"{name} is not in any static files directory"
        served = serve(RequestFactory().get(url), name, insecure=True)
        assert served.status_code == 200
        assert b"".join(served.streaming_content), f"{name} is empty"


def test_docs_pages_point_at_the_schema(db, client):
    for path in ("/api/v1/docs/", "/api/v1/redoc/"):
        assert "/api/v1/schema/" in client.get(path).content.decode()
    assert client.get("/api/v1/schema/").status_code == 200

"""`/docs`: Swagger UI served from the installed package, so it works offline.

The assets are vendored from the npm package `swagger-ui-dist` (Apache-2.0; see
`swagger_ui/README.md`). The page names only `/docs/assets/...` and `/openapi.json`, and
turns off Swagger UI's online validator badge, so nothing is fetched from another host.
The document declares the bearer and basic security schemes, so the Authorize button
takes an API key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "swagger_ui"
ASSETS_URL = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Serve `/docs` and its assets (the app is built with `docs_url=None`)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="swagger-ui-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )

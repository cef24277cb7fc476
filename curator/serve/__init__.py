"""``curator serve``: the label, review, duplicates, browse and agreement pages in a browser.

app: the Starlette app (tokens, CSRF, routes); views: what the read-only pages show;
server: annotator links and running uvicorn; static/: the page, its script and style.
"""

"""``/docs``: the OpenAPI document rendered as one self-contained HTML page (no CDN)."""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["render_docs"]

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
  color:#1a1a1a}
h1{margin-bottom:.2rem}
.op{border:1px solid #ccd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:700;font-family:monospace}
.get{color:#0b6} .post{color:#06b} .delete{color:#b30} code,pre{font-family:ui-monospace,monospace}
pre{background:#f4f4f8;padding:.6rem;overflow:auto;font-size:13px} summary{cursor:pointer}
table{border-collapse:collapse} td,th{border:1px solid #dde;padding:.2rem .5rem;text-align:left}
@media (prefers-color-scheme: dark){
  body{background:#111;color:#eee} pre{background:#222} .op{border-color:#444}}
"""


def _pre(value: Any) -> str:
    return f"<pre>{html.escape(json.dumps(value, indent=2))}</pre>"


def render_docs(document: dict[str, Any]) -> str:
    info = document["info"]
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>{html.escape(document['info']['title'])} API</title><style>{_STYLE}</style>",
        f"<h1>{html.escape(info['title'])} API v{html.escape(info['version'])}</h1>",
        f"<p>{html.escape(document['info'].get('description', ''))}</p>",
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a>, "
        "<a href=/asyncapi.json>/asyncapi.json</a>.</p>",
    ]
    for path, item in document["paths"].items():
        for method, op in item.items():
            parts.append(
                f"<section class=op><div><span class='m {method}'>{method.upper()}</span>"
                f"<code>{html.escape(path)}</code></div><p>{html.escape(op.get('summary', ''))}</p>"
            )
            if op.get("parameters"):
                rows = "".join(
                    f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                    f"<td>{html.escape(p.get('description', ''))}</td></tr>"
                    for p in op["parameters"]
                )
                parts.append(
                    f"<table><tr><th>parameter</th><th>in</th><th></th></tr>{rows}</table>"
                )
            if "requestBody" in op:
                body = op["requestBody"]["content"]["application/json"]["schema"]
                parts.append(f"<details><summary>request body</summary>{_pre(body)}</details>")
            codes = ", ".join(op.get("responses", {}))
            parts.append(f"<p>responses: {html.escape(codes)}</p></section>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(
            f"<details id='{html.escape(name)}'><summary>{html.escape(name)}</summary>"
            f"{_pre(schema)}</details>"
        )
    return "".join(parts)

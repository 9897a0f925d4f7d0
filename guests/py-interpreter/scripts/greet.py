# A small CGI script: greets ?name=..., escaped. The one bench and the
# README's numbers for py-cgi.wasm run.
import html
import os
from urllib.parse import parse_qs

query = parse_qs(os.environ.get("QUERY_STRING", ""))
name = query.get("name", ["nobody"])[0]

print("Content-Type: text/html")
print()
print(f"<p>Hello {html.escape(name)}!</p>")

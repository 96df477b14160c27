"""`mrapsim load`: a Locust-style load harness on trio.

Layout: `scenario` (tasks, parsed), `sigv4` (signer), `client` (TCP/CONNECT/TLS on trio
streams, HTTP/1.1 connections), `http1` (sans-IO response reader), `http2` (h2 connections),
`failures` (the failure vocabulary), `requests` (task → S3 request), `runner` (users,
models, stop), `stats` + `histogram` (mergeable measurements), `report` / `html` /
`thresholds` (output), `server_metrics` (mrapsim's /metrics beside ours), `cli` (the command).
"""

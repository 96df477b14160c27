"""`mrapsim load`: a Locust- and k6-style load harness on trio.

Layout: `scenario` (tasks as data, TOML), `users` (the Python scenario API: User, task,
wait times, clients, checks), `shapes` (k6 stages, Locust shape classes), `catalog` (built-in,
Python and TOML scenarios found and loaded; `scenarios/` holds the built-ins), `sigv4` (SigV4
and SigV4A signers), `client` (TCP/CONNECT/TLS on trio streams, HTTP/1.1 connections), `http1`
(sans-IO response reader), `http2` (h2 connections), `failures` (the failure vocabulary),
`requests` (task → S3 request), `runner` (users, models, stop), `stats` + `histogram`
(mergeable measurements), `report` / `html` / `thresholds` (output), `live` (the page and
/metrics during a run), `server_metrics` (mrapsim's /metrics beside ours), `settings`
(command line, MRAPSIM_LOAD_*, config file), `cli` (the command), `execution` (one process or
several).
"""

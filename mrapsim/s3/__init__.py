"""The S3 data plane: an ASGI app that speaks S3's REST API over a `Store`.

Modules: `app` (the ASGI callable), `request` and `headers` (the one request value, read by all
that follows), `routing` (the dispatch table), `addressing` (host and path → bucket and key),
`auth` (SigV4/SigV4A, sans-IO), one module per operation family (`service`,
`bucket`, `listing`, `object`, `multipart`, `copying`), `xml` and `errors` (rendering),
`documents` (XML request bodies), `tokens` (continuation tokens). Bodies: `chunked` (the sans-IO
aws-chunked decoder), `payload` (streaming receive: decode, verify signatures and checksums,
store), `checksums` (flexible checksums and their CRC arithmetic, by awscrt).
"""

from mrapsim.s3.app import RequestHook, S3App, create_app
from mrapsim.s3.errors import S3Error
from mrapsim.s3.records import RequestRecord

__all__ = ["RequestHook", "RequestRecord", "S3App", "S3Error", "create_app"]

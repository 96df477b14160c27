"""Service-level operations: ListBuckets."""

from __future__ import annotations

from mrapsim.s3.context import Context
from mrapsim.s3.errors import invalid_argument
from mrapsim.s3.request import bounded_int
from mrapsim.s3.responses import S3Response, xml_response
from mrapsim.s3.xml import document, leaf, node

MAX_BUCKETS = 10000
TOKEN_SCOPE = "\x00ListBuckets"  # never a bucket name, so bucket listing tokens cannot stand in


async def list_buckets(ctx: Context) -> S3Response:
    query = ctx.request.query
    prefix = query.get("prefix", "")
    max_buckets = _max_buckets(query.get("max-buckets"))
    after = ""
    token = query.get("continuation-token")
    if token is not None:
        decoded = ctx.tokens.decode(TOKEN_SCOPE, token)
        if decoded is None:
            raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token)
        after = decoded
    # Bucket counts are small (S3 caps an account at 10,000 by default): a filter is fine here.
    buckets = [b for b in (await ctx.store.list_buckets()) if b.name.startswith(prefix) and b.name > after]
    page, rest = buckets[:max_buckets], buckets[max_buckets:]
    owner = ctx.owner
    children = [
        node("Owner", leaf("ID", owner.id), leaf("DisplayName", owner.display_name)),
        node(
            "Buckets",
            *(
                node(
                    "Bucket",
                    leaf("Name", b.name),
                    leaf("CreationDate", b.created),
                    leaf("BucketRegion", b.region),
                )
                for b in page
            ),
        ),
    ]
    if rest and page:
        children.append(leaf("ContinuationToken", ctx.tokens.encode(TOKEN_SCOPE, page[-1].name)))
    if "prefix" in query:
        children.append(leaf("Prefix", prefix))
    return xml_response(document("ListAllMyBucketsResult", *children))


def _max_buckets(text: str | None) -> int:
    if text is None:
        return MAX_BUCKETS
    if bounded_int(text) is None or not 1 <= int(text) <= MAX_BUCKETS:
        raise invalid_argument("max-buckets must be an integer between 1 and 10000", "max-buckets", text)
    return int(text)

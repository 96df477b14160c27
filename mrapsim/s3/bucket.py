"""Bucket-level operations other than listing: HeadBucket, GetBucketLocation, CreateBucket,
DeleteBucket."""

from __future__ import annotations

from mrapsim.s3.context import REGION, Context
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document

REGION_HEADERS = (("x-amz-bucket-region", REGION),)


async def head_bucket(ctx: Context) -> S3Response:
    ctx.store.get_bucket(ctx.bucket)
    return empty_response(headers=(*REGION_HEADERS, ("x-amz-access-point-alias", "false")))


async def get_bucket_location(ctx: Context) -> S3Response:
    ctx.store.get_bucket(ctx.bucket)
    # S3 reports us-east-1 as an empty LocationConstraint (a historical quirk clients rely on).
    constraint = "" if REGION == "us-east-1" else REGION
    return xml_response(document("LocationConstraint", constraint))


async def create_bucket(ctx: Context) -> S3Response:
    # The optional CreateBucketConfiguration body names a region; one region is served.
    await ctx.body.read_all()
    ctx.store.create_bucket(ctx.bucket)
    return empty_response(headers=(("location", f"/{ctx.bucket}"),))


async def delete_bucket(ctx: Context) -> S3Response:
    ctx.store.delete_bucket(ctx.bucket)
    return empty_response(204)

"""Bucket-level operations other than listing: HeadBucket, GetBucketLocation, CreateBucket,
DeleteBucket."""

from __future__ import annotations

import re

from mrapsim.s3 import acl
from mrapsim.s3.context import REGION, Context
from mrapsim.s3.documents import parse_request_document
from mrapsim.s3.errors import S3Error
from mrapsim.s3.extras import reject_bucket_object_lock
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document

REGION_HEADERS = (("x-amz-bucket-region", REGION),)


async def head_bucket(ctx: Context) -> S3Response:
    await ctx.store.get_bucket(ctx.bucket)
    return empty_response(headers=(*REGION_HEADERS, ("x-amz-access-point-alias", "false")))


async def get_bucket_location(ctx: Context) -> S3Response:
    await ctx.store.get_bucket(ctx.bucket)
    # S3 reports us-east-1 as an empty LocationConstraint (a historical quirk clients rely on).
    constraint = "" if REGION == "us-east-1" else REGION
    return xml_response(document("LocationConstraint", constraint))


BUCKET_NAME = re.compile(r"(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


async def create_bucket(ctx: Context) -> S3Response:
    name = ctx.bucket
    if not BUCKET_NAME.fullmatch(name) or ".." in name or IP_ADDRESS.fullmatch(name):
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.", 400, BucketName=name)
    # The optional CreateBucketConfiguration body names a region; one region is served, so it is
    # only checked for being well-formed.
    body = await ctx.body.read_all()
    if body.strip():
        parse_request_document(body, "CreateBucketConfiguration")
    acl.check_create_bucket_headers(ctx)
    reject_bucket_object_lock(ctx.request.headers)
    await ctx.store.create_bucket(name)
    await acl.apply_create_bucket_headers(ctx)
    return empty_response(headers=(("location", f"/{ctx.bucket}"),))


async def delete_bucket(ctx: Context) -> S3Response:
    await ctx.store.delete_bucket(ctx.bucket)
    return empty_response(204)

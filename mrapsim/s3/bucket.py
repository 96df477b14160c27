"""Bucket-level operations other than listing: HeadBucket, GetBucketLocation, CreateBucket,
DeleteBucket."""

from __future__ import annotations

import re

from mrapsim.config import DEFAULT_REGION, REGION_NAME
from mrapsim.s3 import acl, object_lock
from mrapsim.s3.context import Context
from mrapsim.s3.documents import child_text, parse_request_document
from mrapsim.s3.errors import S3Error
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import document


async def head_bucket(ctx: Context) -> S3Response:
    info = await ctx.store.get_bucket(ctx.bucket)
    return empty_response(headers=(("x-amz-bucket-region", info.region), ("x-amz-access-point-alias", "false")))


async def get_bucket_location(ctx: Context) -> S3Response:
    info = await ctx.store.get_bucket(ctx.bucket)
    # S3 reports us-east-1 as an empty LocationConstraint (a historical quirk clients rely on).
    constraint = "" if info.region == "us-east-1" else info.region
    return xml_response(document("LocationConstraint", constraint))


BUCKET_NAME = re.compile(r"(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


async def create_bucket(ctx: Context) -> S3Response:
    name = ctx.bucket
    if not BUCKET_NAME.fullmatch(name) or ".." in name or IP_ADDRESS.fullmatch(name):
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.", 400, BucketName=name)
    # The optional CreateBucketConfiguration body names the bucket's Region (none: us-east-1).
    region = DEFAULT_REGION
    body = await ctx.body.read_all()
    if body.strip():
        constraint = child_text(parse_request_document(body, "CreateBucketConfiguration"), "LocationConstraint")
        if constraint:
            region = "eu-west-1" if constraint == "EU" else constraint
        # us-east-1 spelt out is accepted (s3fs sends it), though us-east-1 itself refuses it.
        if not REGION_NAME.fullmatch(region):
            raise S3Error(
                "InvalidLocationConstraint",
                "The specified location-constraint is not valid",
                400,
                LocationConstraint=constraint or "",
            )
    acl.check_create_bucket_headers(ctx)
    await ctx.store.create_bucket(name, region)
    await acl.apply_create_bucket_headers(ctx)
    if object_lock.enabled_on_create(ctx.request.headers):
        await object_lock.enable_on_create(ctx)
    return empty_response(headers=(("location", f"/{ctx.bucket}"),))


async def delete_bucket(ctx: Context) -> S3Response:
    await ctx.store.delete_bucket(ctx.bucket)
    return empty_response(204)

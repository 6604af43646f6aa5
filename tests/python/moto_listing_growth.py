"""Why moto grew in the soak (docs/reliability.md, "Soak"): measures moto's
memory and ListObjectVersions time as a versioned bucket's history grows,
with moto's instance tracking on (as moto ships) or off (as rat_testkit's
MOTO_LAUNCHER starts it).

Usage, with the tests' moto virtualenv:
    target/moto-venv/bin/python tests/python/moto_listing_growth.py [--untracked]

Writes 4,000 small versions on 12 keys (the soak's file writes), 500 at a
time, and after each batch lists the versions of one pipeline's prefix 20
times (the soak's publishes); prints moto's resident memory, the objects the
garbage collector tracks, and the mean listing time. moto 5.2.5's
ListObjectVersions deep-copies every version of the bucket before filtering
by prefix, and BaseModel.__new__ records every copy in a class-level list:
with tracking on, memory grows with listings times history.
"""

import gc
import sys
import time

import moto.core.common_models as models

if "--untracked" in sys.argv:
    models.BaseModel.__new__ = staticmethod(lambda cls, *args, **kwargs: object.__new__(cls))

from moto.s3.models import s3_backends  # noqa: E402 (after the patch)


def resident_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1


backend = s3_backends["123456789012"]["aws"]
backend.create_bucket("soak-bucket", "eu-west-1")
backend.put_bucket_versioning("soak-bucket", "Enabled")
written = 0
for batch in range(8):
    for _ in range(500):
        key = f"chaos/pipelines/silver/p{written % 12}/pipeline.sql"
        backend.put_object("soak-bucket", key, f"SELECT {written} AS n".encode())
        written += 1
    started = time.monotonic()
    for _ in range(20):
        backend.list_object_versions("soak-bucket", prefix="chaos/pipelines/silver/p3/", max_keys=1000)
    took_ms = (time.monotonic() - started) * 1000 / 20
    print(
        f"versions={written} rss={resident_mib()} MiB gc_objects={len(gc.get_objects())} "
        f"list_ms={took_ms:.0f}",
        flush=True,
    )

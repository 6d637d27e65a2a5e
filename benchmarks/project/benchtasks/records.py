"""
What each no-op task of the task benchmark does, on both systems: record
when it started beside when it was enqueued, an RPUSH of "<enqueued>
<started>" (both time.time()) to the list "bench:starts" in
BENCH_REDIS_URL's Redis.
"""

import functools
import os
import time

import redis

STARTS = "bench:starts"


@functools.cache
def _records():
    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


def record_start(enqueued_at):
    started = time.time()
    _records().rpush(STARTS, "%r %r" % (enqueued_at, started))

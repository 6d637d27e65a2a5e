"""
A channel layer on one or more Redis servers.

- layer.py: RedisChannelLayer, its options, routing, and the hot path (one
  send, one receive).
- connection.py: shards and the connections to them.
- state.py, pump.py: per event loop, the pumps that own the blocking pops.
- delivery.py: what pumps pop, on its way to a receive(); the local buffer.
- streams.py: at-least-once channels (Redis streams).
- book.py: the bookkeeping (counts, depths handed back), written in
  batches off the hot path.
- large.py, groups.py, delay.py, peek.py, stats.py, store.py: the rest of
  the contract and its extensions.
- lua/: the scripts (loaded by scripts.py).

Keys, for a key prefix P (the "prefix" option):

- P:c:<channel>   list of "<sent ms>:<body>", ordinary and single-reader
                  channels; P:n:<channel> counts a single-reader channel's
                  messages until its owner has handed them out.
- P:p:<name!>     list of "<sent ms>:<channel>:<body>", the process-specific
                  channels of one prefix; P:n:<name!> hashes channel -> depth
                  (counted until the owner has handed them out).
- P:q:<channel>   stream of entries {m: <body>} with consumer group
                  "consumers", at-least-once channels.
- P:g:<group>     hash channel -> "<expires ms>:<kind>:<capacity>", the
                  members of a group that live on this shard.
- P:d             zset of delayed messages "<id>:<kind>:<capacity>:<channel>:
                  <body>", scored by when they are due.
- P:s:<name>, P:u:<name>, P:k   stats counters, consumers seen, names seen.
- P:w:<id>        wake keys of pumps.
- P:v:<key>       a value of the "store" extension (a task's result), on
                  its key's shard.

Every key has an expiry.
"""

from .connection import shard_name
from .layer import RedisChannelLayer

__all__ = ["RedisChannelLayer", "shard_name"]

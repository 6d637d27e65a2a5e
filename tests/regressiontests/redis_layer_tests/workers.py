"""
Processes the Redis layer tests start: consumers that a test can kill.

    python workers.py consume URL CHANNEL OUT [--tasks N]
        Receive {"n": int} messages on CHANNEL with N concurrent receive
        loops; each loop stops at its first {"type": "stop"}. Write the
        received numbers to OUT (JSON) at the end.
    python workers.py hold URL CHANNEL OUT
        Receive one message on the at-least-once CHANNEL, write its number
        to OUT and wait, never acknowledging it, until killed.
    python workers.py take URL CHANNEL OUT
        Receive one message on the at-least-once CHANNEL, acknowledge it,
        write its number to OUT and exit.
    python workers.py echo URL
        Answer each message on "requests" on its "reply" channel, forever.

URL may list several shards, separated by commas. Options of the layer come
from the environment: LAYER_OPTIONS, JSON.
"""

import argparse
import asyncio
import json
import logging
import os
import sys

sys.path[:0] = [
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
]

from django_fork.channels.layers.redis import RedisChannelLayer  # noqa: E402


def make_layer(url):
    options = json.loads(os.environ.get("LAYER_OPTIONS", "{}"))
    return RedisChannelLayer(url.split(","), **options)


def write(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)


async def consume(args):
    layer = make_layer(args.url)
    received = []

    async def loop():
        while True:
            message = await layer.receive(args.channel)
            if message.get("type") == "stop":
                return
            received.append(message["n"])

    await asyncio.gather(*(loop() for _ in range(args.tasks)))
    await layer.close()
    write(args.out, received)


async def hold(args):
    layer = make_layer(args.url)
    message = await layer.receive(args.channel)
    write(args.out, message["n"])
    await asyncio.Event().wait()


async def take(args):
    layer = make_layer(args.url)
    message = await layer.receive(args.channel)
    await layer.ack(args.channel, message)
    await layer.close()
    write(args.out, message["n"])


async def echo(args):
    layer = make_layer(args.url)
    while True:
        message = await layer.receive("requests")
        while True:
            try:
                await layer.send(message["reply"], {"type": "reply", "n": message["n"]})
                break
            except Exception as e:
                # Redis went away between the receive and the reply.
                logging.getLogger("echo").warning("Reply failed: %s", e)
                await asyncio.sleep(0.2)


def main():
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["consume", "hold", "take", "echo"])
    parser.add_argument("url")
    parser.add_argument("channel", nargs="?")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--tasks", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(globals()[args.command](args))


if __name__ == "__main__":
    main()

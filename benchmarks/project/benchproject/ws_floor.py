"""
The floor of the WebSocket benchmarks: benchproject/ws.py's logic as a bare
ASGI application, one process, no Django, no layer. /ws/echo/ sends every
frame back; every frame on /ws/group/ goes to every socket of /ws/group/ in
this process. Not a server to use.

    uvicorn benchproject.ws_floor:application
"""


class Floor:
    def __init__(self):
        self.group = set()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        broadcast = scope["path"] == "/ws/group/"
        await send({"type": "websocket.accept"})
        if broadcast:
            self.group.add(send)
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                frame = {"type": "websocket.send"}
                if message.get("text") is not None:
                    frame["text"] = message["text"]
                else:
                    frame["bytes"] = message.get("bytes")
                if not broadcast:
                    await send(frame)
                    continue
                for member in list(self.group):
                    try:
                        await member(frame)
                    except Exception:
                        self.group.discard(member)
        finally:
            self.group.discard(send)


application = Floor()

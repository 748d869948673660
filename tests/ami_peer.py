"""A scriptable AMI peer on a real TCP socket: stands in for Asterisk, which is not on this machine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from ami_bridge.frames import AmiMessage, FrameParser

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def frame(*pairs: tuple[str, str], **headers: str) -> bytes:
    """One AMI message, CRLF line endings, blank line at the end."""
    lines = [f"{k}: {v}" for k, v in [*pairs, *headers.items()]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class FakeAsterisk:
    """Answers Login, list actions and other actions the way Asterisk 22 does in the recordings."""

    def __init__(self, secret: str = "crm-secret") -> None:
        self.secret = secret
        self.actions: list[AmiMessage] = []
        self.connections = 0
        self.connect_times: list[float] = []
        self.drop_next = 0  # close this many new connections at once, before the banner
        self.silent: set[str] = set()  # actions never answered
        # action -> reply headers (default Success), or a function of the action that gives them
        self.replies: dict[str, dict[str, str] | Callable[[AmiMessage], dict[str, str]]] = {}
        self.list_items: dict[str, list[dict[str, str]]] = {"CoreShowChannels": [], "QueueStatus": []}
        self.after_login: bytes = b""  # written once a login succeeds
        self.before_list: dict[str, bytes] = {}  # action -> events written just before its list reply
        self.writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> FakeAsterisk:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def actions_named(self, name: str) -> list[AmiMessage]:
        return [a for a in self.actions if a.get("Action").lower() == name.lower()]

    async def push(self, data: bytes, *, bytewise: bool = False) -> None:
        """Send bytes to every connected client; bytewise yields to the loop after each byte."""
        for writer in list(self.writers):
            if bytewise:
                for i in range(len(data)):
                    writer.write(data[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0)  # two loop turns: the client reads this byte alone
                    await asyncio.sleep(0)
            else:
                writer.write(data)
                await writer.drain()

    async def drop_all(self) -> None:
        for writer in list(self.writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self.connections += 1
        self.connect_times.append(asyncio.get_running_loop().time())
        if self.drop_next:
            self.drop_next -= 1
            writer.close()
            return
        self.writers.append(writer)
        writer.write(BANNER)
        parser = FrameParser()
        try:
            while data := await reader.read(4096):
                for action in parser.feed(data):
                    self.actions.append(action)
                    await self._answer(action, writer)
        except ConnectionError:
            pass
        finally:
            self.writers.remove(writer)
            writer.close()

    async def _answer(self, action: AmiMessage, writer: asyncio.StreamWriter) -> None:
        name, action_id = action.get("Action"), action.action_id
        if name in self.silent:
            return
        if name == "Login":
            if action.get("Secret") != self.secret:
                writer.write(frame(Response="Error", ActionID=action_id, Message="Authentication failed"))
                await asyncio.sleep(0.05)  # Asterisk closes the socket a moment later, no Goodbye
                writer.close()
                return
            writer.write(frame(Response="Success", ActionID=action_id, Message="Authentication accepted"))
            writer.write(frame(Event="FullyBooted", Privilege="system,all", Status="Fully Booted"))
            writer.write(self.after_login)
        elif name in self.list_items:
            writer.write(self.before_list.get(name, b""))
            writer.write(self._list(name, action_id, self.list_items[name]))
        else:
            reply = self.replies.get(name, {"Response": "Success"})
            if callable(reply):
                reply = reply(action)
            writer.write(frame(*reply.items(), ActionID=action_id))
        await writer.drain()

    @staticmethod
    def _list(name: str, action_id: str, items: Iterable[dict[str, str]]) -> bytes:
        items = list(items)
        complete = {"CoreShowChannels": "CoreShowChannelsComplete"}.get(name, f"{name}Complete")
        out = frame(Response="Success", ActionID=action_id, EventList="start", Message="will follow")
        out += b"".join(frame(*item.items(), ActionID=action_id) for item in items)
        return out + frame(
            Event=complete, ActionID=action_id, EventList="Complete", ListItems=str(len(items))
        )

"""Lazy AmiMessage: a frame split into headers only when read gives what an eager parse gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from ami_bridge.frames import AmiMessage, FrameParser


def eager_messages(data: bytes) -> list[AmiMessage]:
    """The reference: every frame split at once, line by line, as the parser always did before."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    messages = []
    for frame in text.split("\n\n"):
        headers = []
        for line in frame.split("\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers.append((name.strip(), value.removeprefix(" ")))
        if headers:
            messages.append(AmiMessage(headers))
    return messages


def lazy_messages(data: bytes, chunk: int) -> list[AmiMessage]:
    parser = FrameParser()
    return [msg for i in range(0, len(data), chunk) for msg in parser.feed(data[i : i + chunk])]


def public_view(msg: AmiMessage, names: list[str]) -> dict[str, object]:
    """Everything a caller can read from a message, each name asked in three spellings."""
    view: dict[str, object] = {
        "event": msg.event, "response": msg.response, "action_id": msg.action_id, "message": msg.message,
        "headers": list(msg.headers), "iter": list(msg), "len": len(msg), "variables": msg.variables(),
        "repr": repr(msg),
    }
    for name in names:
        for spelled in (name, name.lower(), name.upper()):
            view[f"get {spelled}"] = msg.get(spelled, "<none>")
            view[f"getall {spelled}"] = msg.getall(spelled)
            view[f"in {spelled}"] = spelled in msg
    return view


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_lazy_parse_equals_eager_parse_on_every_recorded_trace(traces_dir: Path, chunk: int) -> None:
    traces = sorted(traces_dir.glob("*.ami"))
    assert traces, "no recorded traces"
    for trace in traces:
        data = trace.read_bytes()
        eager, lazy = eager_messages(data), lazy_messages(data, chunk)
        assert lazy == eager, trace.name
        names = sorted({name for msg in eager for name in msg} | {"Missing"})
        for eager_msg, lazy_msg in zip(eager, lazy_messages(data, chunk), strict=True):
            # first the event name alone (the unsplit path), then every other reading
            assert lazy_msg.event == eager_msg.event
            assert public_view(lazy_msg, names) == public_view(eager_msg, names), trace.name


def test_event_name_is_read_without_splitting_the_headers() -> None:
    (msg,) = FrameParser().feed(b"Event: Newexten\r\nChannel: PJSIP/101-00000001\r\nApp: Dial\r\n\r\n")
    assert msg.event == "Newexten"
    assert msg._headers is None, "reading the event name must not split the frame"
    assert msg.get("app") == "Dial" and msg.headers[0] == ("Event", "Newexten")


@pytest.mark.parametrize(
    "frame",
    [
        b"Event:Hangup\r\nUniqueid:1.1\r\n\r\n",  # no space after the colon
        b"Event:  Hangup\r\n Uniqueid : 1.1\r\nuniqueid: 2.2\r\n\r\n",  # two spaces, padded and repeated names
        b"Event: Hangup\r\nEvent: Other\r\nResponse: Success\r\nActionID: x\r\n\r\n",
        b"Event: \r\nMessage: a:b\r\n\r\n",  # empty event name
        b"Event: Hangup\r\nValue: with\rlone CR\r\n\r\n",
        b"Event: VarSet\r\nChanVariable(PJSIP/1-1): A=1\r\nchanvariable: B=\r\n\r\n",
        b"Event: Hangup\r\nCause-txt: Uniqueid: fake\r\nUniqueid: 1.1\r\n\r\n",  # a name inside a value
        b"Event: Hangup\r\n\tUniqueid: 2.2\r\nUniqueid: 1.1\r\n\r\n",  # padded with a tab, earlier
        b"Event: Hangup\r\nUNIQUEID: 2.2\r\nUniqueid: 1.1\r\n\r\n",  # spelled otherwise, earlier
        b"Event: Hangup\r\nUniqueidX: 3.3\r\nUniqueid: 1.1\r\nStateInterface: a\r\n\r\n",
    ],
)
def test_unusual_event_frames_read_the_same_lazily(frame: bytes) -> None:
    (eager,) = eager_messages(frame)
    (lazy,) = FrameParser().feed(frame)
    names = [name for name in eager] + ["Missing"]
    assert public_view(lazy, names) == public_view(eager, names)


def test_one_header_read_from_an_unsplit_frame_equals_the_split_one(traces_dir: Path) -> None:
    """`get` on a fresh frame finds the header in its text; the answer must be the index's."""
    frames = [frame for trace in sorted(traces_dir.glob("*.ami"))
              for frame in trace.read_bytes().replace(b"\r\n", b"\n").decode().split("\n\n")]
    frames += ["Event: Hangup\nUNIQUEID: 2.2\nUniqueid: 1.1", "Event: Hangup\n Uniqueid : 2.2\nUniqueid: 1.1",
               "Event: Hangup\nStateInterface: a\nInterface:b", "Event: Hangup\nx: Linkedid: 9\nLinkedid:  7"]
    checked = 0
    for frame in frames:
        lines = frame.split("\n")
        if not frame.startswith("Event:") or not all(":" in line for line in lines):
            continue
        names = {line.partition(":")[0].strip() for line in lines} | {"Missing", "Interface", "Uniqueid"}
        for name in names:
            for spelled in (name, name.lower(), name.upper()):
                unsplit = AmiMessage._unsplit(frame, frame.split("\n"))
                assert unsplit.get(spelled, "<none>") == AmiMessage(unsplit.headers).get(spelled, "<none>"), \
                    (frame[:60], spelled)
                checked += 1
    assert checked > 10_000


def test_may_contain_never_misses_an_action_id_on_every_recorded_trace(traces_dir: Path) -> None:
    for trace in sorted(traces_dir.glob("*.ami")):
        messages = lazy_messages(trace.read_bytes(), 4096)
        action_ids = {msg.action_id for msg in lazy_messages(trace.read_bytes(), 4096)} - {""}
        for msg in messages:
            for action_id in action_ids | {"action/never-sent/1"}:
                if not msg.may_contain([action_id]):
                    assert msg.action_id != action_id, trace.name
        assert not any(msg.may_contain(["action/never-sent/1"]) for msg in messages if msg._text is not None)

"""FrameParser: the AMI wire format, split reads, hostile bytes."""

from __future__ import annotations

import logging
import random

import pytest

from ami_bridge.frames import AmiMessage, FrameParser

NEWCALLERID = (
    "Event: NewCallerid\r\n"
    "Channel: Local/s@inbound-00000000;2\r\n"
    "CallerIDNum: +73511234567\r\n"
    "CallerIDName: Иван Петров ☎\r\n"
    "Uniqueid: 1795394611.1\r\n"
    "ChanVariable: CRM_CALL_ID=ans-0001\r\n"
    "ChanVariable: QUEUE=sales\r\n"
    "ChanVariable: IVR=\r\n"
    "\r\n"
).encode()


def parse_all(data: bytes, **limits: int) -> list[AmiMessage]:
    return FrameParser(**limits).feed(data)


def test_crlf_frames_give_ordered_headers() -> None:
    msgs = parse_all(
        b"Event: Hangup\r\nUniqueid: 1.1\r\nCause: 16\r\n\r\nResponse: Success\r\nActionID: a1\r\n\r\n"
    )
    assert [m.headers for m in msgs] == [
        [("Event", "Hangup"), ("Uniqueid", "1.1"), ("Cause", "16")],
        [("Response", "Success"), ("ActionID", "a1")],
    ]
    assert msgs[0].event == "Hangup" and msgs[1].response == "Success" and msgs[1].action_id == "a1"


def test_bare_lf_frames_parse_like_crlf() -> None:
    assert parse_all(b"Event: Hangup\nUniqueid: 1.1\n\n") == parse_all(
        b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
    )


def test_crlf_split_between_cr_and_lf_still_ends_the_frame() -> None:
    parser = FrameParser()
    assert parser.feed(b"Event: Hangup\r\n\r") == []
    assert [m.event for m in parser.feed(b"\nEvent: Newstate\r\n\r\n")] == ["Hangup", "Newstate"]


def test_header_names_are_case_insensitive() -> None:
    (msg,) = parse_all(b"event: Cdr\r\nUniqueID: 1.5\r\nLinkedID: 1.4\r\nactionid: x\r\n\r\n")
    assert msg.event == "Cdr"
    assert msg.get("Uniqueid") == "1.5" and msg.get("LINKEDID") == "1.4" and msg["uniqueid"] == "1.5"
    assert msg.action_id == "x" and "linkedid" in msg and "Missing" not in msg
    assert msg.get("Missing") == "" and msg.get("Missing", "-") == "-"


def test_values_keep_colons_and_inner_spaces() -> None:
    (msg,) = parse_all(b"Event: X\r\nBridgeUniqueid: a:b:c\r\nOutput:   indented\r\nEmpty:\r\n\r\n")
    assert msg.get("BridgeUniqueid") == "a:b:c"
    assert msg.get("Output") == "  indented"
    assert msg.get("Empty") == "" and "Empty" in msg


def test_repeated_keys_and_channel_variables() -> None:
    (msg,) = parse_all(NEWCALLERID)
    assert msg.getall("chanvariable") == ["CRM_CALL_ID=ans-0001", "QUEUE=sales", "IVR="]
    assert msg.get("ChanVariable") == "CRM_CALL_ID=ans-0001"
    assert msg.variables() == {"CRM_CALL_ID": "ans-0001", "QUEUE": "sales", "IVR": ""}


def test_originate_response_channel_scoped_variables() -> None:
    (msg,) = parse_all(
        b"Event: OriginateResponse\r\nResponse: Success\r\n"
        b"ChanVariable(Local/s@inbound-00000000;1): CRM_CALL_ID=ans-0001\r\n"
        b"ChanVariable(Local/s@inbound-00000000;1): QUEUE=sales\r\n\r\n"
    )
    assert msg.event == "OriginateResponse" and msg.response == "Success"
    assert msg.variables() == {"CRM_CALL_ID": "ans-0001", "QUEUE": "sales"}


def test_banner_is_exposed_not_a_header() -> None:
    parser = FrameParser()
    msgs = parser.feed(
        b"Asterisk Call Manager/11.0.0\r\nResponse: Error\r\nMessage: Authentication failed\r\n\r\n"
    )
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert [m.headers for m in msgs] == [[("Response", "Error"), ("Message", "Authentication failed")]]
    assert parser.errors == 0


def test_line_without_colon_is_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    parser = FrameParser()
    with caplog.at_level(logging.INFO, logger="ami_bridge.frames"):
        (msg,) = parser.feed(b"Event: X\r\nthis line has no colon\r\nA: 1\r\n\r\n")
    assert msg.headers == [("Event", "X"), ("A", "1")]
    assert parser.errors == 1
    assert "without a colon" in caplog.text


def test_extra_blank_lines_make_no_empty_messages() -> None:
    assert [m.event for m in parse_all(b"\r\n\r\n\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n\r\n")] == [
        "A",
        "B",
    ]


def test_oversized_line_is_dropped_and_parser_resyncs(caplog: pytest.LogCaptureFixture) -> None:
    parser = FrameParser(max_line=100, max_frame=1000)
    long = b"X-Long: " + b"x" * 500 + b"\r\n"
    with caplog.at_level(logging.WARNING, logger="ami_bridge.frames"):
        msgs = parser.feed(b"Event: Bad\r\n" + long + b"Tail: 1\r\n\r\nEvent: Good\r\n\r\n")
    assert [m.event for m in msgs] == ["Good"]
    assert "line over 100 bytes" in caplog.text


def test_oversized_line_across_reads_is_dropped_and_parser_resyncs() -> None:
    parser = FrameParser(max_line=100, max_frame=1000)
    got = parser.feed(b"Event: Bad\r\nX-Long: ")
    for _ in range(50):
        got += parser.feed(b"x" * 37)
    got += parser.feed(b"\r\nMore: 1\r\n")
    got += parser.feed(b"\r")
    got += parser.feed(b"\n")
    got += parser.feed(b"Event: Good\r\n\r\n")
    assert [m.event for m in got] == ["Good"]
    assert parser.errors == 1


def test_oversized_frame_is_dropped_and_parser_resyncs(caplog: pytest.LogCaptureFixture) -> None:
    parser = FrameParser(max_line=100, max_frame=1000)
    body = b"".join(b"H%d: %s\r\n" % (i, b"v" * 50) for i in range(100))
    with caplog.at_level(logging.WARNING, logger="ami_bridge.frames"):
        got = parser.feed(b"Event: Huge\r\n" + body[:3000])
        got += parser.feed(body[3000:] + b"\r\nEvent: Good\r\n\r\n")
    assert [m.event for m in got] == ["Good"]
    assert "frame over 1000 bytes" in caplog.text


def test_default_limits_accept_the_largest_recorded_reply(traces_dir) -> None:  # type: ignore[no-untyped-def]
    parser = FrameParser()
    msgs = parser.feed((traces_dir / "login_failure.ami").read_bytes())
    assert parser.errors == 0
    (listing,) = [m for m in msgs if m.action_id == "crm-cmd-2"]  # ListCommands: a header per action
    assert len(listing.headers) == 87 and listing.get("Ping").startswith("Keepalive command")


def test_invalid_utf8_is_replaced_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    parser = FrameParser()
    with caplog.at_level(logging.WARNING, logger="ami_bridge.frames"):
        (msg,) = parser.feed(b"Event: NewCallerid\r\nCallerIDName: Bad\xff\xfeName\xd0\r\nNext: ok\r\n\r\n")
    assert msg.get("CallerIDName") == "Bad\ufffd\ufffdName\ufffd"
    assert msg.get("Next") == "ok"
    assert parser.errors == 1 and "invalid UTF-8" in caplog.text


def test_a_real_replacement_character_is_no_error_and_a_bad_byte_split_off_still_is() -> None:
    """U+FFFD sent as UTF-8 is a character like any other (hypothesis found it counted as an error);
    an invalid byte counts once, even when the chunk before left a sequence unfinished."""
    parser = FrameParser()
    (msg,) = parser.feed("Event: NewCallerid\r\nCallerIDName: \ufffd\r\n\r\n".encode())
    assert msg.get("CallerIDName") == "\ufffd" and parser.errors == 0
    assert parser.feed(b"Event: NewCallerid\r\nCallerIDName: \xd0") == [] and parser.errors == 0  # unfinished
    (msg,) = parser.feed(b"x\xd0\x98\r\n\r\n")  # the held \xd0 is followed by no continuation byte
    assert msg.get("CallerIDName") == "\ufffdxИ" and parser.errors == 1


@pytest.mark.parametrize("cut", range(1, len(NEWCALLERID)))
def test_cyrillic_name_survives_a_split_at_every_byte(cut: int) -> None:
    parser = FrameParser()
    msgs = parser.feed(NEWCALLERID[:cut]) + parser.feed(NEWCALLERID[cut:])
    assert [m.get("CallerIDName") for m in msgs] == ["Иван Петров ☎"]
    assert parser.errors == 0


def test_one_byte_reads_give_the_same_messages_as_one_read(traces_dir) -> None:  # type: ignore[no-untyped-def]
    data = (traces_dir / "inbound_answered.ami").read_bytes() + NEWCALLERID
    parser = FrameParser()
    bytewise = [m for i in range(len(data)) for m in parser.feed(data[i : i + 1])]
    assert bytewise == parse_all(data)
    assert len(bytewise) == 129


def test_script_caller_name_is_data_not_escaped() -> None:
    (msg,) = parse_all(b"Event: NewCallerid\r\nCallerIDName: <script>alert(1)</script>\r\n\r\n")
    assert msg.get("CallerIDName") == "<script>alert(1)</script>"


def test_garbage_never_raises() -> None:
    rng = random.Random(20261123)
    alphabet = b"\r\n:\xd0\xff Event: Asterisk Call Manager/ \x00"
    for limits in ({}, {"max_line": 16, "max_frame": 64}):
        parser = FrameParser(**limits)
        for _ in range(3000):
            size = rng.randint(0, 80)
            if rng.random() < 0.5:
                chunk = bytes(rng.getrandbits(8) for _ in range(size))
            else:
                chunk = bytes(rng.choice(alphabet) for _ in range(size))
            for msg in parser.feed(chunk):
                assert msg.headers
        assert parser.feed(b"\r\n\r\nEvent: After\r\n\r\n")[-1].event == "After"

"""Where an IdP's answer ends: the pool's framing (llhttp through httptools) against h11's
parse of the same bytes, for generated answers valid and broken, fed in random pieces.

The reference is h11 plus the refusals the pool adds on purpose (each a named rule below):
status codes outside 100-599 (RFC 9110 §15), versions other than HTTP/1.0 and 1.1,
DEL in a field value (RFC 9110 §5.5), and ``Content-Length`` together with ``Transfer-Encoding`` (RFC 9112 §6.1: h11 lets
``Transfer-Encoding`` win). A repeated ``Content-Length`` with equal values, which h11 merges
(RFC 9112 §6.3 rule 5 allows either), is refused too: h11's events cannot show it, so it has
its own table below."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_oauth_shim.upstream.framing import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    HTTPError,
    RawResponse,
    ResponseReader,
)


@dataclass(frozen=True)
class Outcome:
    """What a client makes of an answer: the response and whether the connection may carry
    another request, or None for a refusal."""

    response: RawResponse | None
    reusable: bool = False


REFUSED = Outcome(None)
WAITING = Outcome(None, True)  # no answer yet, nothing wrong so far


@dataclass(frozen=True)
class Answer:
    stream: bytes  # what the peer sends
    closes: bool  # whether it then closes the connection
    head_request: bool  # the request was HEAD
    cuts: tuple[int, ...]  # where the stream is split into reads


# -- the pool's reader ---------------------------------------------------------------------


def read(answer: Answer) -> Outcome:
    reader = ResponseReader(head_request=answer.head_request)
    bounds = [0, *sorted(set(answer.cuts)), len(answer.stream)]
    try:
        for start, end in zip(bounds, bounds[1:]):
            if start < end and reader.feed(answer.stream[start:end]) is not None:
                # Bytes after the answer, in a later read: the pool closes the connection.
                return Outcome(reader.response, reader.reusable and end == len(answer.stream))
        if answer.closes:
            return Outcome(reader.feed_eof(), False)
    except HTTPError:
        return REFUSED
    return WAITING


# -- the reference: h11, and the pool's deliberate refusals ---------------------------------


def _refused_by_the_pool_on_purpose(event: h11.Response | h11.InformationalResponse) -> bool:
    names = [name for name, _ in event.headers.raw_items()]
    lower = [name.lower() for name in names]
    return (
        not 100 <= event.status_code <= 599
        or event.http_version not in (b"1.0", b"1.1")
        or (b"content-length" in lower and b"transfer-encoding" in lower)
        # RFC 9110 §5.5: a field value is visible characters, obs-text, SP and HTAB; DEL
        # (0x7F) is none of them. llhttp refuses it, h11 lets it through.
        or any(b"\x7f" in value for _, value in event.headers.raw_items())
    )


def reference(answer: Answer) -> Outcome:
    conn = h11.Connection(h11.CLIENT)
    method = b"HEAD" if answer.head_request else b"POST"
    conn.send(h11.Request(method=method, target="/token", headers=[("Host", "idp"), ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    bounds = [0, *sorted(set(answer.cuts)), len(answer.stream)]
    for start, end in zip(bounds, bounds[1:]):
        conn.receive_data(answer.stream[start:end])
    response: h11.Response | None = None
    body = bytearray()
    closed = False
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if not answer.closes or closed:
                    return WAITING
                conn.receive_data(b"")  # the peer closes: an answer framed by the close ends
                closed = True
            elif isinstance(event, h11.InformationalResponse | h11.Response):
                if _refused_by_the_pool_on_purpose(event):
                    return REFUSED
                if isinstance(event, h11.Response):
                    response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                if any(b"\x7f" in value for _, value in event.headers.raw_items()):
                    return REFUSED  # DEL in a trailer field: as in a header field, below
                break
            else:  # ConnectionClosed before a complete answer
                return REFUSED
    except h11.RemoteProtocolError:
        return REFUSED
    assert response is not None
    headers: dict[str, str] = {}
    for raw_name, raw_value in response.headers.raw_items():
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    trailing, _ = conn.trailing_data
    # The pool does not reuse a connection after HEAD (llhttp cannot be told that its answer
    # has no body, so the reader ends there and does not know what follows).
    reusable = not closed and conn.their_state is h11.DONE and not trailing and not answer.head_request
    return Outcome(RawResponse(response.status_code, headers, bytes(body)), reusable)


# -- generated answers ----------------------------------------------------------------------

# Field names and values: tokens with every token character, values with every visible one
# (drawn from fixed lists: generating text character by character is most of the test's time).
NAMES = ["X", "x-Request-Id", "Cache-Control", "!#$%&'*+-.^_`|~", "0", "Set-Cookie", "a" * 40, "Pragma"]
VALUES = ["", "no-store", "a b", 'q"u,o;t=e', "!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "\u00e9t\u00e9", "x" * 60, "0"]
names = st.sampled_from(NAMES)
values = st.sampled_from(VALUES)
fields = st.lists(st.tuples(names, values), max_size=5)
FRAMINGS = [
    "length",
    "chunked",
    "close",  # neither: the body runs until the peer closes
    "length and chunked",
    "chunked and length",
    "length short",  # declares fewer bytes than follow
    "length long",  # declares more bytes than follow
    "xchunked",
    "gzip",
    "gzip, chunked",
    "chunked, chunked",
    "Chunked",
]
STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 201 Created",
    b"HTTP/1.1 400 Bad Request",
    b"HTTP/1.1 401 Unauthorized",
    b"HTTP/1.1 503 Unavailable",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 200",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 101 Switching Protocols",
    b"HTTP/1.1 099 Low",
    b"HTTP/1.1 600 High",
    b"HTTP/1.1 2000 OK",
    b"HTTP/2.0 200 OK",
    b"HTTP/1.2 200 OK",
    b"http/1.1 200 OK",
    b"HTTP/1.1 OK",
]
INTERIM = [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"]
EXTENSIONS = [b"", b";a", b";a=b", b';a="x y"', b";a=b;c=d", b";a=b1-!"]
CONNECTION = [None, b"close", b"keep-alive", b"Keep-Alive, Close", b"upgrade"]
BARE_LF = re.compile(rb"(?<!\r)\n")
OBS_FOLD = re.compile(rb"\r\n[ \t]")
CR_IN_EXTENSION = re.compile(rb";[^\r\n]*\r(?!\n)")
TAILS = [b"", b"", b"", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"junk"]


def _chunked(draw: st.DrawFn, body: bytes) -> list[tuple[bytes, bool]]:
    """The body in chunks, as (bytes, may be edited) pieces: chunk extensions are not edited
    (llhttp checks their syntax, h11 skips them: see DEVIATIONS)."""
    out: list[tuple[bytes, bool]] = []
    rest = body
    while rest:
        size = draw(st.integers(1, len(rest)))
        out += [(b"%x" % size, True), (draw(st.sampled_from(EXTENSIONS)), False), (b"\r\n%s\r\n" % rest[:size], True)]
        rest = rest[size:]
    out += [(b"0", True), (draw(st.sampled_from(EXTENSIONS)), False), (b"\r\n", True)]
    trailer = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in draw(fields))
    return [*out, (trailer + b"\r\n", True)]


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    body = draw(st.binary(max_size=200))
    framing = draw(st.sampled_from(FRAMINGS))
    head_fields = [f"{name}: {value}".encode("latin-1") for name, value in draw(fields)]
    connection = draw(st.sampled_from(CONNECTION))
    if connection is not None:
        head_fields.append(b"Connection: " + connection)
    length = b"Content-Length: %d" % len(body)
    payload = [(body, True)]
    if framing == "length":
        head_fields.append(length)
    elif framing in ("chunked", "Chunked"):
        head_fields.append(b"Transfer-Encoding: " + framing.encode())
        payload = _chunked(draw, body)
    elif framing in ("length and chunked", "chunked and length"):
        both = [length, b"Transfer-Encoding: chunked"]
        head_fields += both if framing == "length and chunked" else both[::-1]
        payload = _chunked(draw, body)
    elif framing == "length short":
        head_fields.append(b"Content-Length: %d" % max(0, len(body) - 3))
    elif framing == "length long":
        head_fields.append(b"Content-Length: %d" % (len(body) + 3))
    elif framing != "close":
        head_fields.append(b"Transfer-Encoding: " + framing.encode())
        payload = _chunked(draw, body)
    interim = b"".join(draw(st.lists(st.sampled_from(INTERIM), max_size=2)))
    status_line = draw(st.sampled_from(STATUS_LINES))
    head = interim + status_line + b"\r\n" + b"".join(f + b"\r\n" for f in head_fields) + b"\r\n"
    pieces = [(head, True), *payload, (draw(st.sampled_from(TAILS)), True)]
    stream = b"".join(piece for piece, _ in pieces)
    editable = [i for i, n in enumerate(_offsets(pieces)) if n is not None]
    if draw(st.integers(0, 4)) == 0 and editable:  # one byte changed, dropped or added
        at = draw(st.sampled_from(editable))
        byte = bytes([draw(st.sampled_from(b"\r\n \t:;0aZ\x00\x7f\xff"))])
        edit = draw(st.sampled_from(["replace", "drop", "insert"]))
        edited = stream[:at] + (b"" if edit == "drop" else byte) + stream[at + (edit != "insert") :]
        if all(len(rule.findall(edited)) <= len(rule.findall(stream)) for rule in (BARE_LF, OBS_FOLD, CR_IN_EXTENSION)):  # see DEVIATIONS
            stream = edited
    cuts = tuple(draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=8)))
    return Answer(stream, draw(st.booleans()), draw(st.integers(0, 9)) == 0, cuts)


def _offsets(pieces: list[tuple[bytes, bool]]) -> list[int | None]:
    """For each byte of the joined pieces, its offset if it may be edited, else None."""
    out: list[int | None] = []
    for piece, editable in pieces:
        out += [len(out) + i if editable else None for i in range(len(piece))]
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers())
def test_an_answer_is_framed_as_h11_frames_it(answer: Answer) -> None:
    ours, expected = _codings_in_lower_case(read(answer)), reference(answer)
    if ours == REFUSED and expected == WAITING:
        # llhttp refuses at the first wrong byte, h11 at the end of the line or section:
        # the same bytes followed by the close must be refused by h11 too.
        expected = reference(replace(answer, closes=True))
    assert ours == expected


def _codings_in_lower_case(outcome: Outcome) -> Outcome:
    """h11 reports transfer codings in lower case (they are case-insensitive, RFC 9112 §7)."""
    response = outcome.response
    if response is None or "transfer-encoding" not in response.headers:
        return outcome
    headers = {**response.headers, "transfer-encoding": response.headers["transfer-encoding"].lower()}
    return Outcome(RawResponse(response.status, headers, response.body), outcome.reusable)


# -- the bounds (the same for every way of splitting the bytes) -------------------------------


def _all_splits(stream: bytes) -> list[tuple[int, ...]]:
    return [(), tuple(range(1, len(stream))), tuple(range(0, len(stream), 1000))[1:]]


OVERSIZE = {
    "header section": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\nContent-Length: 0\r\n\r\n",
    "too many fields": b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEADER_FIELDS + 1) + b"Content-Length: 0\r\n\r\n",
    "interim answers": b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_HEADER_BYTES // 25 + 1) + b"HTTP/1.1 204 No\r\n\r\n",
    "chunk extension": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=" + b"b" * MAX_HEADER_BYTES + b"\r\nx\r\n0\r\n\r\n",
    "trailer section": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + b"t" * MAX_HEADER_BYTES + b"\r\n\r\n",
    "one-byte chunks": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * MAX_HEADER_BYTES + b"0\r\n\r\n",
    "declared length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1),
    "chunked body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY_BYTES + 1) + b"x" * (MAX_BODY_BYTES + 1),
    "body until close": b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MAX_BODY_BYTES + 1),
}


@pytest.mark.parametrize("stream", OVERSIZE.values(), ids=OVERSIZE.keys())
def test_an_oversize_answer_is_refused_however_it_is_split(stream: bytes) -> None:
    for cuts in _all_splits(stream) if len(stream) < 200_000 else [(), tuple(range(4096, len(stream), 4096))]:
        assert read(Answer(stream, True, False, cuts)) == REFUSED


WITHIN_BOUNDS = {
    "header section": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES - 100) + b"\r\nContent-Length: 0\r\n\r\n",
    "fields": b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEADER_FIELDS - 1) + b"Content-Length: 0\r\n\r\n",
    "body": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MAX_BODY_BYTES + b"x" * MAX_BODY_BYTES,
}


@pytest.mark.parametrize("stream", WITHIN_BOUNDS.values(), ids=WITHIN_BOUNDS.keys())
def test_an_answer_at_the_bounds_is_read(stream: bytes) -> None:
    outcome = read(Answer(stream, False, False, (len(stream) // 2,)))
    assert outcome.response is not None and outcome.reusable


NO_BODY = {
    "204 without framing": (b"HTTP/1.1 204 No Content\r\n\r\n", False),
    "204 with a length": (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", False),
    "304 with a length": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", False),
    "answer to HEAD": (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", True),
}


@pytest.mark.parametrize(("stream", "head"), NO_BODY.values(), ids=NO_BODY.keys())
def test_answers_without_a_body_end_with_their_header_section(stream: bytes, head: bool) -> None:
    """RFC 9112 §6.3 rules 1-2: complete without waiting for bytes or for the close."""
    outcome = read(Answer(stream, False, head, ()))
    assert outcome.response is not None and outcome.response.body == b""


# Answers h11 accepts and the pool refuses, each allowed by the RFC, kept out of the generated
# answers above (so the differential test does not need to know about them).
DEVIATIONS = {
    # RFC 9112 §6.3 rule 5: reject, or merge equal values (h11 merges).
    "Content-Length twice": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    "Content-Length list": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}",
    # RFC 9112 §5.2: a field line folded onto the next (obs-fold); h11 unfolds it, a gateway
    # may instead discard the message and answer 502, as the shim does.
    "obs-fold": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\n{}",
    # RFC 9112 §2.2: a recipient MAY take a bare LF for a line end (h11 does).
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
    # RFC 9112 §7.1.1: llhttp checks chunk extensions (tokens and quoted strings, no
    # whitespace), h11 skips whatever follows ";".
    "space in a chunk extension": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2; a=b\r\n{}\r\n0\r\n\r\n",
    "two words in a chunk extension": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a b\r\n{}\r\n0\r\n\r\n",
    # A CR that ends no line, inside a chunk extension (found by the generated answers: an edit
    # next to an extension): llhttp refuses it, h11 skips it with the rest of the line.
    "bare CR in a chunk extension": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a\r\r\n{}\r\n0\r\n\r\n",
    "bare CR ending the last chunk's extension": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0;a\r\rX: \r\n\r\n",
}


@pytest.mark.parametrize("stream", DEVIATIONS.values(), ids=DEVIATIONS.keys())
def test_answers_that_h11_accepts_and_the_pool_refuses(stream: bytes) -> None:
    answer = Answer(stream, False, False, ())
    assert reference(answer).response is not None
    assert read(answer) == REFUSED


# Bytes after a complete answer, in the same read as its last byte: whatever they are (llhttp
# skips CR and LF silently), the connection must not carry another request.
BYTES_AFTER_THE_ANSWER = {
    "CR after a length-framed body": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}\r",
    "CRLF after a length-framed body": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}\r\n",
    "LF after a body ending in CRLF": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}\r\n\n",
    "CR after the last chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n\r",
    "CRLF after a 204": b"HTTP/1.1 204 No Content\r\n\r\n\r\n",
    "a second status line": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
    "one stray letter": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}x",
}


@pytest.mark.parametrize("stream", BYTES_AFTER_THE_ANSWER.values(), ids=BYTES_AFTER_THE_ANSWER.keys())
def test_bytes_after_a_complete_answer_make_the_connection_unusable(stream: bytes) -> None:
    outcome = read(Answer(stream, False, False, ()))
    assert outcome.response is not None and not outcome.reusable
    assert outcome == reference(Answer(stream, False, False, ()))


ENDING_IN_CR_OR_LF = {
    "a body ending in CRLF": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}\r\n",
    "a body of CR and LF only": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\r\n\r",
    "the last chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "a 204": b"HTTP/1.1 204 No Content\r\n\r\n",
}


@pytest.mark.parametrize("stream", ENDING_IN_CR_OR_LF.values(), ids=ENDING_IN_CR_OR_LF.keys())
def test_an_answer_ending_in_cr_or_lf_leaves_the_connection_reusable(stream: bytes) -> None:
    outcome = read(Answer(stream, False, False, ()))
    assert outcome.response is not None and outcome.reusable


CONTROLS_IN_THE_REASON_PHRASE = {
    "NUL": b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n",
    "SOH": b"HTTP/1.1 200 \x01\r\nContent-Length: 0\r\n\r\n",
    "NUL in an interim answer": b"HTTP/1.1 100 \x00\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
}


@pytest.mark.parametrize("stream", CONTROLS_IN_THE_REASON_PHRASE.values(), ids=CONTROLS_IN_THE_REASON_PHRASE.keys())
def test_a_control_character_in_the_reason_phrase_is_refused(stream: bytes) -> None:
    """RFC 9112 §4: HTAB, SP, visible characters and obs-text only (llhttp lets NUL through)."""
    assert read(Answer(stream, True, False, ())) == REFUSED

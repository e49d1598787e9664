"""The SFTP download's own buffers: the byte queue, the channel's receive queue, the read-ahead.

Both sit between paramiko and the parser and exist to copy less; these tests pin down that
they still hand over every byte, in order, with the blocking, timeout and end-of-stream
behaviour of what they replace (paramiko's `BufferedPipe`, a plain `read`).
"""

from __future__ import annotations

import io
import threading
import time

import pytest
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout

from resources.byte_queue import ByteQueue
from resources.sftp_transfer import ReadAhead, _ReceiveQueue


def test_the_byte_queue_hands_out_every_byte_once_in_order_whatever_the_sizes():
    queue = ByteQueue()
    pieces = [b"abc", b"", b"defgh", b"i", b"jklmnop"]
    for piece in pieces:
        queue.append(piece)
    assert len(queue) == 16 and queue.take(0) == b"" and queue.take_piece(0) == b""
    assert queue.take(2) == b"ab"  # part of a piece
    assert queue.take(4) == b"cdef"  # the rest of one, part of the next
    assert queue.take_piece(10) == b"gh"  # the first piece's rest, never a join
    assert queue.take_piece(10) == b"i"
    assert len(queue) == 7
    assert queue.take(100) == b"jklmnop"
    assert (len(queue), queue.take(5), queue.take_piece(5)) == (0, b"", b"")


def test_a_piece_taken_whole_is_the_object_that_was_appended():
    queue = ByteQueue()
    first, second = b"x" * 1000, b"y" * 1000
    queue.append(first)
    queue.append(second)
    assert queue.take(1000) is first
    assert queue.take_piece(5000) is second


def test_reads_join_packets_into_exactly_the_bytes_asked_for():
    queue = _ReceiveQueue(fill_bytes=1 << 20)
    packets = [bytes([i]) * 1000 for i in range(10)]
    for packet in packets:
        queue.feed(packet)
    stream = b"".join(packets)
    assert len(queue) == len(stream)
    assert queue.read(4) == stream[:4]
    assert queue.read(2500) == stream[4:2504]
    queue.close()
    assert queue.read(1 << 20) == stream[2504:]  # all there is, once the channel closed
    assert len(queue) == 0


def test_a_whole_packet_is_handed_over_without_a_copy():
    queue = _ReceiveQueue(fill_bytes=1 << 20)
    packet = b"x" * 32768
    queue.feed(packet)
    assert queue.read(32768) is packet


def test_a_read_waits_for_all_it_asks_for_then_returns_it_at_once():
    queue = _ReceiveQueue(fill_bytes=1 << 20)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(queue.read(3000)))
    reader.start()
    for part in (b"a" * 1000, b"b" * 1000, b"c" * 1500):
        time.sleep(0.02)
        assert not got  # still waiting: paramiko's pipe would have returned the first part
        queue.feed(part)
    reader.join(5)
    assert got == [b"a" * 1000 + b"b" * 1000 + b"c" * 1000]
    assert queue.read(500) == b"c" * 500


def test_a_read_waits_for_at_most_fill_bytes():
    # The server sends no more than the window before we acknowledge what we read, so a read
    # must not wait for more than the window holds.
    queue = _ReceiveQueue(fill_bytes=100)
    queue.feed(b"z" * 150)
    assert queue.read(1000) == b"z" * 150


def test_closing_returns_what_is_left_then_end_of_stream():
    queue = _ReceiveQueue(fill_bytes=1 << 20)
    queue.feed(b"tail")
    queue.close()
    assert queue.read(100) == b"tail"
    assert queue.read(100) == b""


def test_close_wakes_a_waiting_reader_with_what_arrived():
    queue = _ReceiveQueue(fill_bytes=1 << 20)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(queue.read(100)))
    reader.start()
    queue.feed(b"part")
    time.sleep(0.05)
    queue.close()
    reader.join(5)
    assert got == [b"part"]


@pytest.mark.parametrize("pipe", [BufferedPipe, lambda: _ReceiveQueue(fill_bytes=1 << 20)])
def test_timeouts_behave_as_in_paramiko(pipe):
    queue = pipe()
    with pytest.raises(PipeTimeout):
        queue.read(10, timeout=0.0)
    with pytest.raises(PipeTimeout):
        queue.read(10, timeout=0.05)
    queue.feed(b"abc")
    assert queue.read(2, timeout=0.05) == b"ab"
    assert queue.read_ready()
    assert queue.empty() == b"c"
    assert not queue.read_ready()


def test_a_read_that_times_out_after_some_bytes_returns_them():
    queue = _ReceiveQueue(fill_bytes=1 << 20)
    queue.feed(b"abc")
    assert queue.read(10, timeout=0.05) == b"abc"


def test_the_event_follows_whether_data_is_waiting():
    queue = _ReceiveQueue(fill_bytes=1 << 20)
    event = threading.Event()
    queue.set_event(event)
    assert not event.is_set()
    queue.feed(b"ab")
    assert event.is_set()
    queue.read(1)
    assert event.is_set()
    queue.read(1)
    assert not event.is_set()


class Pieces(io.RawIOBase):
    """A source returning the given pieces one per read, then raising `error` if given."""

    def __init__(self, pieces: list[bytes], error: BaseException | None = None) -> None:
        self.pieces = list(pieces)
        self.error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.pieces:
            piece = self.pieces.pop(0)
            assert size is not None and len(piece) <= size
            return piece
        if self.error is not None:
            raise self.error
        return b""


def test_read_ahead_hands_over_whole_pieces_and_splits_only_when_asked():
    pieces = [b"a" * 300, b"b" * 300, b"c" * 50]
    ahead = ReadAhead(Pieces(pieces), chunk_bytes=1000, depth=2)
    assert ahead.read(0) == b""
    first = ahead.read(1 << 20)
    assert first is pieces[0]
    assert ahead.read(100) == b"b" * 100
    assert ahead.read(1 << 20) == b"b" * 200
    assert ahead.read() == b"c" * 50
    assert ahead.read(10) == b""
    ahead.close()


def test_read_ahead_delivers_the_bytes_read_before_an_error_then_the_error():
    ahead = ReadAhead(Pieces([b"ok" * 10], error=EOFError("dropped")), chunk_bytes=1000, depth=2)
    assert ahead.read(1 << 20) == b"ok" * 10
    with pytest.raises(EOFError, match="dropped"):
        ahead.read(1 << 20)
    ahead.close()

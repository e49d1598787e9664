"""Bytes kept in the pieces they arrived in, for the buffers between a download and the parser.

Free of dagster and of everything else outside the standard library: the transfer process
(`sftp_child.py`) imports it without the `resources` package's `__init__`.
"""

from collections import deque


class ByteQueue:
    """A FIFO of bytes that copies only what a take returns.

    Appending each piece to one growing bytes object, or slicing the rest off it after a read,
    copies the whole buffer again for every piece: several times over for an SFTP download,
    which arrives in 32 KiB packets and 255 KiB answers. Here a piece stays as it came; a take
    joins just the bytes it returns, once, and hands a piece taken whole over as it is.
    Not thread-safe: a caller sharing it between threads holds its own lock.
    """

    def __init__(self) -> None:
        self._pieces: deque[bytes] = deque()
        self._head = 0  # bytes of _pieces[0] already taken
        self._size = 0  # bytes not taken yet

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        if data:
            self._pieces.append(data)
            self._size += len(data)

    def take(self, nbytes: int) -> bytes:
        """Up to `nbytes` bytes, from as many pieces as that spans."""
        parts = []
        want = min(nbytes, self._size)
        while want:
            part = self.take_piece(want)
            parts.append(part)
            want -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def take_piece(self, nbytes: int) -> bytes:
        """Up to `nbytes` bytes of the first piece alone: never a join, and no copy at all
        when the rest of the piece fits."""
        if not self._pieces or nbytes <= 0:
            return b""
        piece, head = self._pieces[0], self._head
        if len(piece) - head <= nbytes:
            self._pieces.popleft()
            self._head = 0
            out = piece[head:] if head else piece
        else:
            out = piece[head : head + nbytes]
            self._head += nbytes
        self._size -= len(out)
        return out

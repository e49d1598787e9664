"""AEP CSV (delimiter, quote, escape, nulls, header, encoding of the destination) → RFC 4180."""

import codecs
import csv
import io
import re
from typing import BinaryIO

from resources.audience_settings import AepDestinationOptions
from rtcdp_assets.shared.ingest import CsvOptions, UnreadableFile
from rtcdp_assets.shared.ingest.limits import row_too_large


class AepCsvStream(io.RawIOBase):
    """Rewrites an AEP CSV stream into what `ingest_file` reads: UTF-8, RFC 4180 quoting.

    AEP writes CSV with Spark's options (docs/formats.md §a2): quotes inside a quoted value are
    escaped with the escape character (`\\"`, not `""`), a null may be written as `NULL`, the
    file may be UTF-16 or have no header.

    - `<esc><quote>` becomes `""` and `<esc><esc>` one escape character, everywhere, the way
      pyarrow's and Python's CSV readers read escapes (Spark quotes every value holding a
      quote, so `<esc><quote>` only occurs inside quotes); other escape characters stay.
    - Null tokens are removed only where they are a whole unquoted value.
    - With quoting off (AEP's "Null Character") the stream is read with a quote character that
      does not occur in text (\\x01), so `"` stays an ordinary character.

    The work per block is C-level (split, count, regex); Python runs once per escape sequence.
    """

    def __init__(
        self,
        source: BinaryIO | io.RawIOBase,
        options: AepDestinationOptions,
        block: int = 1 << 20,
        max_line_bytes: int = 64 << 20,
    ) -> None:
        self._source = source
        self._block = block
        self._max_line = max_line_bytes
        self._encoding = options.encoding
        self._decoder = (
            None
            if options.encoding == "utf-8"
            else codecs.getincrementaldecoder(options.encoding)("strict")
        )
        self._delimiter = options.delimiter
        self._quote = options.quote_char.encode() if options.quote_char else None
        esc = options.escape_char.encode() if options.escape_char else None
        self._esc = esc if self._quote is not None and esc and esc != self._quote else None
        tokens = sorted({options.null_value, options.empty_value} - {"", '""'})
        self._tokens = [t.encode() for t in tokens]
        delim = re.escape(options.delimiter.encode())
        self._null_re = (
            re.compile(
                b"(?<=["
                + delim
                + b"\\n])(?:"
                + b"|".join(re.escape(t.encode()) for t in tokens)
                + b")(?=["
                + delim
                + b"\\r\\n]|\\Z)"
            )
            if tokens
            else None
        )
        self._escape_re = (
            re.compile(re.escape(self._esc) + b"(.)", re.DOTALL) if self._esc is not None else None
        )
        self._in_quote = False
        self._prev = b"\n"
        self._carry = b""
        self._pending = b""
        self._eof = False
        self.header: list[str] | None = None
        if not options.header:
            line = io.StringIO()
            csv.writer(line, delimiter=options.delimiter, lineterminator="\n").writerow(
                options.columns
            )
            self._pending = line.getvalue().encode()
            self.header = list(options.columns)

    @property
    def csv_options(self) -> CsvOptions:
        # No quoting: a control character that never occurs in an export stands in for the
        # quote (pyarrow refuses NUL), so `"` is read as an ordinary character.
        quote = self._quote.decode() if self._quote is not None else "\x01"
        return CsvOptions(delimiter=self._delimiter, quote_char=quote, encoding="utf-8")

    def readable(self) -> bool:
        return True

    def read_header(self) -> list[str]:
        """The column names, read ahead without consuming anything (empty for an empty file)."""
        while self.header is None and not self._eof:
            self._fill(len(self._pending) + 1)
        return list(self.header or [])

    def _decode(self, data: bytes, final: bool) -> bytes:
        if self._decoder is None:
            return data
        try:
            return self._decoder.decode(data, final).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableFile("bad_encoding", f"the file is not valid {self._encoding}") from exc

    def _nulls(self, segment: bytes, prev: bytes) -> bytes:
        if self._null_re is None or not segment:
            return segment
        return self._null_re.sub(b"", prev + segment)[len(prev) :]

    def _transform(self, data: bytes) -> bytes:
        if self._escape_re is not None and self._esc in data:  # type: ignore[operator]
            # Spark's `\"` and `\\` become RFC 4180's `""` and `\`; a Python call per escape
            # sequence, and values that need one are rare.
            data = self._escape_re.sub(self._unescape, data)
        if self._quote is None:
            out = self._nulls(data, self._prev)
        elif self._null_re is not None and any(t in data for t in self._tokens):
            out = self._nulls_outside_quotes(data)
        else:
            # Nothing else to rewrite; the quote state still has to follow the text.
            if data.count(self._quote) % 2:
                self._in_quote = not self._in_quote
            out = data
        if data:
            self._prev = data[-1:]
        return out

    def _unescape(self, m: re.Match[bytes]) -> bytes:
        nxt = m.group(1)
        if nxt == self._quote:
            return nxt + nxt
        return nxt if nxt == self._esc else m.group(0)

    def _nulls_outside_quotes(self, data: bytes) -> bytes:
        """Null tokens only where they are a whole unquoted value: in RFC 4180 text every quote
        opens or closes a quoted stretch (a doubled quote closes and reopens one)."""
        quote = self._quote or b""
        pieces = data.split(quote)
        for i, piece in enumerate(pieces):
            if (i % 2 == 0) != self._in_quote:
                pieces[i] = self._nulls(piece, quote if i else self._prev)
        if (len(pieces) - 1) % 2:
            self._in_quote = not self._in_quote
        return quote.join(pieces)

    def _capture_header(self, out: bytes) -> None:
        line = out.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").lstrip("\ufeff")
        quote = self._quote.decode() if self._quote is not None else None
        reader = csv.reader(
            [line],
            delimiter=self._delimiter,
            quotechar=quote,
            quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
        )
        self.header = [h.strip() for h in next(reader, [])]

    def _fill(self, want: int) -> None:
        while len(self._pending) < want and not self._eof:
            chunk = self._source.read(self._block)
            if chunk:
                self._carry += self._decode(chunk, final=False)
                cut = self._carry.rfind(b"\n")
                if cut < 0:
                    if len(self._carry) > self._max_line:
                        # Refused here, before the line is held whole in memory.
                        raise row_too_large(
                            self._max_line, f"no line end in {len(self._carry):,} bytes"
                        )
                    continue
                ready, self._carry = self._carry[: cut + 1], self._carry[cut + 1 :]
            else:
                self._eof = True
                ready, self._carry = self._carry + self._decode(b"", final=True), b""
            if ready:
                out = self._transform(ready)
                if self.header is None:
                    self._capture_header(out)
                self._pending += out

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while part := self.read(1 << 20):
                chunks.append(part)
            return b"".join(chunks)
        self._fill(size)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

//! JSON-lines framing: one compact JSON object per `\n`-terminated line.
//!
//! The reader never panics on input: oversized lines, invalid UTF-8/JSON and
//! EOF are reported as [`CodecError`]s. After a recoverable error
//! ([`CodecError::is_recoverable`]) the next call resynchronises on the next
//! newline, so one bad line costs exactly one error.

use std::io::{self, BufRead, BufReader, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::messages::MAX_LINE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The stream ended (a trailing partial line is discarded).
    #[error("end of stream")]
    Eof,
    /// A line (or an encoded message) exceeded the limit; the rest of the
    /// line is skipped.
    #[error("line longer than {limit} bytes")]
    LineTooLong { limit: usize },
    /// The line was not a valid message.
    #[error("invalid message: {0}")]
    Json(#[from] serde_json::Error),
}

impl CodecError {
    /// The stream is still usable after this error (the bad line is skipped).
    pub fn is_recoverable(&self) -> bool {
        match self {
            CodecError::LineTooLong { .. } | CodecError::Json(_) => true,
            CodecError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            CodecError::Eof => false,
        }
    }
}

/// Serialize `msg` as one line (including the trailing `\n`).
pub fn encode_line<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let mut line = serde_json::to_vec(msg)?;
    if line.len() > MAX_LINE_LEN {
        return Err(CodecError::LineTooLong {
            limit: MAX_LINE_LEN,
        });
    }
    line.push(b'\n');
    Ok(line)
}

/// Write `msg` as one line and flush.
pub fn write_message<W: Write + ?Sized, T: Serialize + ?Sized>(
    w: &mut W,
    msg: &T,
) -> Result<(), CodecError> {
    let line = encode_line(msg)?;
    w.write_all(&line)?;
    w.flush()?;
    Ok(())
}

/// Buffered line reader with a maximum line length.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max_len: usize,
    /// Bytes of the current, not yet complete line (kept across
    /// interrupted/timed-out reads).
    partial: Vec<u8>,
    /// Skipping the remainder of an oversized line.
    discarding: bool,
}

impl<R: Read> LineReader<R> {
    /// Reader with the protocol limit [`MAX_LINE_LEN`].
    pub fn new(inner: R) -> Self {
        Self::with_max_len(inner, MAX_LINE_LEN)
    }

    pub fn with_max_len(inner: R, max_len: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            max_len,
            partial: Vec::new(),
            discarding: false,
        }
    }

    pub fn get_ref(&self) -> &R {
        self.inner.get_ref()
    }

    /// Next non-blank line, without the `\n` (and without a trailing `\r`).
    pub fn read_line(&mut self) -> Result<Vec<u8>, CodecError> {
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CodecError::Io(e)),
            };
            if buf.is_empty() {
                self.partial.clear();
                self.discarding = false;
                return Err(CodecError::Eof);
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let chunk_len = newline.unwrap_or(buf.len());
            let consumed = newline.map_or(buf.len(), |i| i + 1);

            if self.discarding {
                self.inner.consume(consumed);
                if newline.is_some() {
                    self.discarding = false;
                }
                continue;
            }
            if self.partial.len() + chunk_len > self.max_len {
                self.inner.consume(consumed);
                self.partial.clear();
                // Without a newline in this chunk the rest of the line is
                // still to come: skip it on the next call.
                self.discarding = newline.is_none();
                return Err(CodecError::LineTooLong {
                    limit: self.max_len,
                });
            }
            self.partial.extend_from_slice(&buf[..chunk_len]);
            self.inner.consume(consumed);
            if newline.is_none() {
                continue;
            }
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(line);
        }
    }

    /// Next line parsed as `T`.
    pub fn read_message<T: DeserializeOwned>(&mut self) -> Result<T, CodecError> {
        let line = self.read_line()?;
        Ok(serde_json::from_slice(&line)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Request, RequestBody};
    use proptest::prelude::*;

    fn reader(data: &[u8], max: usize) -> LineReader<&[u8]> {
        LineReader::with_max_len(data, max)
    }

    #[test]
    fn reads_lines_and_skips_blank() {
        let mut r = reader(b"a\n\n  \r\nb\r\nc", 100);
        assert_eq!(r.read_line().unwrap(), b"a");
        assert_eq!(r.read_line().unwrap(), b"b");
        // "c" has no newline: EOF drops it.
        assert!(matches!(r.read_line(), Err(CodecError::Eof)));
        assert!(matches!(r.read_line(), Err(CodecError::Eof)));
    }

    #[test]
    fn oversize_line_is_skipped() {
        let mut data = vec![b'x'; 50];
        data.extend_from_slice(b"\nok\n");
        let mut r = reader(&data, 10);
        assert!(matches!(
            r.read_line(),
            Err(CodecError::LineTooLong { limit: 10 })
        ));
        assert_eq!(r.read_line().unwrap(), b"ok");
    }

    #[test]
    fn oversize_line_spanning_buffers_is_skipped() {
        // Longer than the 64 KiB BufReader capacity so the line arrives in
        // several chunks.
        let mut data = vec![b'y'; 200 * 1024];
        data.extend_from_slice(b"\nnext\n");
        let mut r = reader(&data, 1000);
        assert!(matches!(r.read_line(), Err(CodecError::LineTooLong { .. })));
        assert_eq!(r.read_line().unwrap(), b"next");
        assert!(matches!(r.read_line(), Err(CodecError::Eof)));
    }

    #[test]
    fn line_of_exactly_max_len_is_accepted() {
        let mut data = vec![b'z'; 10];
        data.push(b'\n');
        assert_eq!(reader(&data, 10).read_line().unwrap().len(), 10);
    }

    #[test]
    fn invalid_json_is_recoverable() {
        let req = Request {
            id: 1,
            body: RequestBody::Poweroff,
        };
        let mut data = b"{not json\n".to_vec();
        data.extend(encode_line(&req).unwrap());
        let mut r = reader(&data, 1000);
        let err = r.read_message::<Request>().unwrap_err();
        assert!(err.is_recoverable(), "{err}");
        assert_eq!(r.read_message::<Request>().unwrap(), req);
    }

    #[test]
    fn write_then_read() {
        let mut out = Vec::new();
        for id in 1..4 {
            write_message(
                &mut out,
                &Request {
                    id,
                    body: RequestBody::Kmsg {
                        text: "multi\nline".into(),
                    },
                },
            )
            .unwrap();
        }
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 3);
        let mut r = LineReader::new(&out[..]);
        for id in 1..4 {
            assert_eq!(r.read_message::<Request>().unwrap().id, id);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048),
                                       max in 1usize..64) {
            let mut r = LineReader::with_max_len(&data[..], max);
            for _ in 0..=data.len() {
                match r.read_message::<Request>() {
                    Err(CodecError::Eof) => break,
                    Err(e) => prop_assert!(e.is_recoverable()),
                    Ok(_) => {}
                }
            }
        }

        #[test]
        fn kmsg_text_roundtrips(text in ".*", id in any::<u64>()) {
            let req = Request { id, body: RequestBody::Kmsg { text } };
            let line = encode_line(&req).unwrap();
            let mut r = LineReader::new(&line[..]);
            prop_assert_eq!(r.read_message::<Request>().unwrap(), req);
        }
    }
}

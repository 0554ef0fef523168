//! A container's output as Docker's json-file driver keeps it: one JSON
//! object per line, `{"log":"hi\n","stream":"stdout","time":"..."}`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Splits each stream into lines, so that an entry is one line as in
/// Docker's logs, whatever the sizes of the reads that carried it.
pub struct LogWriter {
    file: Option<File>,
    pending: [Vec<u8>; 2],
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl LogWriter {
    pub fn append_to(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogWriter { file: Some(file), pending: [Vec::new(), Vec::new()] })
    }

    /// Keeps nothing: for when the log cannot be opened, since the output
    /// must still be drained or the container blocks on a full pipe.
    pub fn discard() -> Self {
        LogWriter { file: None, pending: [Vec::new(), Vec::new()] }
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.write_all(bytes),
            None => Ok(()),
        }
    }

    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        let pending = &mut self.pending[stream as usize];
        pending.extend_from_slice(bytes);
        let Some(last_newline) = pending.iter().rposition(|&b| b == b'\n') else { return Ok(()) };
        let complete: Vec<u8> = pending.drain(..=last_newline).collect();
        let mut out = Vec::new();
        for line in complete.split_inclusive(|&b| b == b'\n') {
            encode(&mut out, stream, line);
        }
        self.append(&out)
    }

    /// Writes what is left of a line that never ended.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                encode(&mut out, stream, &rest);
            }
        }
        self.append(&out)
    }
}

fn encode(out: &mut Vec<u8>, stream: Stream, line: &[u8]) {
    let entry = LogEntry { log: String::from_utf8_lossy(line).into_owned(), stream: stream.name().into(), time: crate::timefmt::now_rfc3339() };
    serde_json::to_writer(&mut *out, &entry).expect("a LogEntry always serializes");
    out.push(b'\n');
}

/// Reads the entries from byte `offset` on; returns them with the offset
/// just past the last complete line (for following a growing log).
pub fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<LogEntry>, u64)> {
    use std::io::Seek;
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    file.seek(io::SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let (mut entries, mut position, mut line) = (Vec::new(), offset, String::new());
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            return Ok((entries, position));
        }
        position += n as u64;
        // A damaged line is skipped rather than ending the whole log.
        if let Ok(entry) = serde_json::from_str(&line) {
            entries.push(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_reads_and_streams_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        let mut w = LogWriter::append_to(&path).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nworld\npart").unwrap();
        w.flush().unwrap();
        let (entries, end) = read_from(&path, 0).unwrap();
        let got: Vec<(&str, &str)> = entries.iter().map(|e| (e.stream.as_str(), e.log.as_str())).collect();
        assert_eq!(got, [("stderr", "oops\n"), ("stdout", "hello\n"), ("stdout", "world\n"), ("stdout", "part")]);
        assert_eq!(end, std::fs::metadata(&path).unwrap().len());
        assert!(read_from(&path, end).unwrap().0.is_empty());
        assert!(read_from(&dir.path().join("none"), 0).unwrap().0.is_empty());
    }
}

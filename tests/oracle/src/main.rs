//! serde_json as an oracle for the wire format (SPEC §3).
//!
//! Reads one request per line on stdin and answers one line per request on stdout:
//! `ok <serde_json::to_string of what was read>` or `err <serde_json's error message>`.
//!
//! Usage: `oxide-wire-oracle [job|keep|value|--hex]`
//!   job    (default) each line is a job text, read as `Job` below: unknown keys are skipped
//!   keep   each line is a job text, read as `KeepJob` below: unknown keys are kept and written back
//!   value  each line is any JSON text, read as `serde_json::Value`
//!   --hex  each line is `<job|keep|value> <hex>`: the kind of request, then the text's bytes in
//!          hex, so that a text may hold newlines or bytes that are not UTF-8 (what the tests use)
//! A malformed `--hex` line is answered with `bad <reason>`; the stream goes on.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufWriter, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The job of SPEC §3, plus the optional keys it names. With neither optional key set it reads
/// and writes exactly like `struct Job { event_name: String, listener_type: String, payload: Value }`:
/// `skip_serializing_if` leaves them out, and a missing `Option` field is `None`.
#[derive(Serialize, Deserialize)]
struct Job {
    event_name: String,
    listener_type: String,
    payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempts: Option<u64>,
}

/// `Job` that keeps the keys it does not know, sorted, after its own: what `oxide.wire.Job` does
/// (its `extra`), so that a job read and written again loses nothing. serde_json skips an unknown
/// key's value checking only its syntax; kept, the value is read in full like `payload`.
#[derive(Serialize, Deserialize)]
struct KeepJob {
    event_name: String,
    listener_type: String,
    payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempts: Option<u64>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

enum Mode {
    Job,
    Keep,
    Value,
}

fn answer(mode: &Mode, text: &[u8]) -> Result<String, serde_json::Error> {
    match mode {
        Mode::Job => serde_json::from_slice::<Job>(text).and_then(|job| serde_json::to_string(&job)),
        Mode::Keep => serde_json::from_slice::<KeepJob>(text).and_then(|job| serde_json::to_string(&job)),
        Mode::Value => serde_json::from_slice::<Value>(text).and_then(|value| serde_json::to_string(&value)),
    }
}

fn unhex(line: &[u8]) -> Result<Vec<u8>, &'static str> {
    if line.len() % 2 != 0 {
        return Err("odd number of hex digits");
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err("not a hex digit"),
    };
    line.chunks(2).map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

/// A `--hex` line: `job <hex>`, `keep <hex>` or `value <hex>`.
fn tagged(line: &[u8]) -> Result<(Mode, Vec<u8>), &'static str> {
    let (mode, rest) = if let Some(rest) = line.strip_prefix(b"job ") {
        (Mode::Job, rest)
    } else if let Some(rest) = line.strip_prefix(b"keep ") {
        (Mode::Keep, rest)
    } else if let Some(rest) = line.strip_prefix(b"value ") {
        (Mode::Value, rest)
    } else {
        return Err("expected `job <hex>`, `keep <hex>` or `value <hex>`");
    };
    Ok((mode, unhex(rest)?))
}

fn main() -> io::Result<()> {
    let mut mode = Mode::Job;
    let mut hex = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "job" => mode = Mode::Job,
            "keep" => mode = Mode::Keep,
            "value" => mode = Mode::Value,
            "--hex" => hex = true,
            other => {
                eprintln!("unknown argument {other:?}; usage: oxide-wire-oracle [job|keep|value|--hex]");
                std::process::exit(2);
            }
        }
    }
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let result = if hex {
            match tagged(&line) {
                Ok((mode, request)) => answer(&mode, &request),
                Err(reason) => {
                    writeln!(out, "bad {reason}")?;
                    out.flush()?;
                    continue;
                }
            }
        } else {
            answer(&mode, &line)
        };
        match result {
            Ok(text) => writeln!(out, "ok {text}")?,
            Err(error) => writeln!(out, "err {error}")?,
        }
        // One answer per request, at once: the caller waits for it before sending the next.
        out.flush()?;
    }
}

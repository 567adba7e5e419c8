//! What the storage benchmarks (`benches/*.rs`) share: reading their command line, so that
//! a bad argument ends in a message and exit status 2, not a panic.

use std::str::FromStr;

/// A benchmark's name and its arguments' synopsis, for the usage message.
pub struct Cli {
    pub name: &'static str,
    pub synopsis: &'static str,
}

impl Cli {
    /// Says `why` (unless empty) and the usage, then exits: 0 after `--help`, else 2.
    pub fn usage(&self, why: &str) -> ! {
        if !why.is_empty() {
            eprintln!("{}: {why}", self.name);
        }
        eprintln!(
            "usage: cargo bench --bench {} -- {}",
            self.name, self.synopsis
        );
        std::process::exit(if why.is_empty() { 0 } else { 2 });
    }

    /// `text` as the value of `flag`, or the usage if it does not parse or is not `ok`.
    pub fn parsed<T: FromStr>(&self, flag: &str, text: &str, ok: impl Fn(&T) -> bool) -> T {
        self.parsed_as(flag, text, "a number above 0", ok)
    }

    /// [`Cli::parsed`] for a value that must be `wanted` (said in the usage message).
    pub fn parsed_as<T: FromStr>(
        &self,
        flag: &str,
        text: &str,
        wanted: &str,
        ok: impl Fn(&T) -> bool,
    ) -> T {
        match text.parse::<T>() {
            Ok(v) if ok(&v) => v,
            _ => self.usage(&format!("{flag} wants {wanted}, not {text:?}")),
        }
    }

    /// The process's arguments, to read flag by flag.
    pub fn args(&'static self) -> ArgReader {
        ArgReader {
            cli: self,
            it: std::env::args().skip(1),
        }
    }
}

/// A benchmark's arguments, read flag by flag ([`Cli::args`]).
pub struct ArgReader {
    cli: &'static Cli,
    it: std::iter::Skip<std::env::Args>,
}

impl ArgReader {
    /// The next flag the benchmark itself must read: `--bench` (which `cargo bench` passes
    /// to every benchmark) is skipped, and `--help` prints the usage and exits.
    pub fn flag(&mut self) -> Option<String> {
        loop {
            match self.it.next()?.as_str() {
                "--bench" => continue,
                "--help" | "-h" => self.cli.usage(""),
                flag => return Some(flag.to_string()),
            }
        }
    }

    /// The value that follows `flag`, or the usage saying it wants `what`. The `--bench`
    /// that `cargo bench` appends is never a value: a flag given last without one would
    /// otherwise take it (`--dir` would make a directory named `--bench`).
    pub fn value(&mut self, flag: &str, what: &str) -> String {
        match self.it.next() {
            Some(v) if v != "--bench" => v,
            _ => self.cli.usage(&format!("{flag} wants {what}")),
        }
    }

    /// The usage, for a flag the benchmark does not know.
    pub fn unknown(&self, flag: &str) -> ! {
        self.cli.usage(&format!("unknown argument {flag:?}"))
    }
}

//! nfq-delay: holds every packet of an NFQUEUE for a fixed time, then accepts it.
//!
//! `tc netem` is missing from this kernel; `tools/netsim` sends what a network namespace
//! receives (iptables INPUT, `-j NFQUEUE --queue-num Q --queue-bypass`) to this program,
//! run inside that namespace. The delay is constant, so packets leave in arrival order.
//!
//! Usage: nfq-delay --queue Q --delay-ms D

use nfq::{Queue, Verdict};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

fn parse_args() -> Result<(u16, Duration), String> {
    let mut queue = 0u16;
    let mut delay = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--queue" => {
                queue = val("--queue")?
                    .parse()
                    .map_err(|e| format!("--queue: {e}"))?
            }
            "--delay-ms" => {
                let ms: f64 = val("--delay-ms")?
                    .parse()
                    .map_err(|e| format!("--delay-ms: {e}"))?;
                if !(0.0..=60_000.0).contains(&ms) {
                    return Err("--delay-ms must be between 0 and 60000".into());
                }
                delay = Some(Duration::from_secs_f64(ms / 1e3));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((queue, delay.ok_or("--delay-ms is required")?))
}

fn main() {
    let (queue_num, delay) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("nfq-delay: {e}");
            }
            eprintln!("usage: nfq-delay --queue Q --delay-ms D");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(queue_num, delay) {
        eprintln!("nfq-delay: {e}");
        std::process::exit(1);
    }
}

fn run(queue_num: u16, delay: Duration) -> std::io::Result<()> {
    let mut q = Queue::open()?;
    q.bind(queue_num)?;
    // Metadata only: the payload is never changed, so the kernel need not copy it.
    q.set_copy_range(queue_num, 0)?;
    // Large (GSO) packets pass as they are; 64k held packets covers 1 Gbit/s × 50 ms.
    q.set_recv_gso(queue_num, true)?;
    q.set_queue_max_len(queue_num, 65_536)?;
    q.set_recv_enobufs(false)?;
    eprintln!("nfq-delay: queue {queue_num}, delay {delay:?}");
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        // Nothing held: wait for a packet. Otherwise take whatever arrived and sleep
        // until the oldest packet is due (at most 200 µs, to keep taking new ones).
        q.set_nonblocking(!held.is_empty());
        loop {
            match q.recv() {
                Ok(msg) => {
                    held.push_back((Instant::now() + delay, msg));
                    q.set_nonblocking(true);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, mut msg) = held.pop_front().expect("front exists");
            msg.set_verdict(Verdict::Accept);
            q.verdict(msg)?;
        }
        if let Some((due, _)) = held.front() {
            let wait = due
                .saturating_duration_since(Instant::now())
                .min(Duration::from_micros(200));
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
}

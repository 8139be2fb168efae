//! What the bench reads about the server process from `/proc`: CPU time and resident memory.

use std::time::Duration;

use anyhow::{Context, bail};

/// User plus system CPU time of every thread of `pid` so far (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    cpu_time_from_stat(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))
}

/// The CPU time a server made of one or more processes spends over a window: read at the start,
/// then again at the end. A process that exits in between (a Pushpin child) does not spoil the
/// reading: what the others spent is counted, and it is named in [`CpuSpent::vanished`].
pub struct CpuWindow {
    start: Vec<(u32, Option<Duration>)>,
}

/// What a [`CpuWindow`] measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSpent {
    /// Summed over the processes read at both ends of the window.
    pub time: Duration,
    /// How many processes that is.
    pub counted: usize,
    /// Processes gone at the start or the end: their CPU in the window is not in `time`.
    pub vanished: Vec<u32>,
}

impl CpuSpent {
    /// Microseconds per unit of work (message, delivery, request); `None` when no process was
    /// read at both ends.
    pub fn us_per(&self, units: u64) -> Option<f64> {
        (self.counted > 0).then(|| self.time.as_secs_f64() * 1e6 / units.max(1) as f64)
    }

    /// A line for the outcome's notes when a process vanished, else `None`.
    pub fn note(&self) -> Option<String> {
        (!self.vanished.is_empty()).then(|| {
            format!(
                "server processes {:?} exited during the measured window: their CPU is not counted, so the \
                 server CPU figure is low",
                self.vanished
            )
        })
    }
}

impl CpuWindow {
    pub fn start(pids: &[u32]) -> Self {
        Self { start: pids.iter().map(|&p| (p, cpu_time(p).ok())).collect() }
    }

    pub fn end(&self) -> CpuSpent {
        spent(&self.start, |p| cpu_time(p).ok())
    }
}

/// Each process's CPU at the end minus at the start; a process missing at either end is listed,
/// not counted.
fn spent(start: &[(u32, Option<Duration>)], at_end: impl Fn(u32) -> Option<Duration>) -> CpuSpent {
    let mut out = CpuSpent::default();
    for &(pid, before) in start {
        match before.zip(at_end(pid)) {
            Some((a, b)) => {
                out.time += b.saturating_sub(a);
                out.counted += 1;
            }
            None => out.vanished.push(pid),
        }
    }
    out
}

/// `pid` and every process below it (children, grandchildren), from each process's `ppid` in
/// `/proc/*/stat`: Pushpin's runner starts its proxy, handler and connection manager this way.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
            if let Some(ppid) = ppid_from_stat(&stat) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(parent_of.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    out
}

fn ppid_from_stat(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of this process, to show what the load generator itself cost.
pub fn self_cpu_time() -> anyhow::Result<Duration> {
    cpu_time(std::process::id())
}

fn cpu_time_from_stat(stat: &str) -> anyhow::Result<Duration> {
    // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    let rest = stat.rsplit_once(')').context("no ')' in stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("stat too short")?.parse()?) };
    let total = ticks(11)? + ticks(12)?;
    // USER_HZ is 100 on every Linux target this runs on (the kernel fixes it for the ABI).
    Ok(Duration::from_millis(total * 10))
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    rss_from_status(&status).with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

fn rss_from_status(status: &str) -> Option<u64> {
    field_kib(status, "VmRSS:")
}

fn field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process's resident high-water mark (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    field_kib(&status, "VmHWM:").with_context(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// Fails early with a clear reason when `--server-pid` names no process.
pub fn check_pid(pid: u32) -> anyhow::Result<()> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!("no process {pid} (--server-pid)");
    }
    Ok(())
}

/// Fails early when none of `pids` exists (a mistyped `--server-pid`); one of several that has
/// already exited is left to [`CpuWindow`], which reports it.
pub fn check_any_pid(pids: &[u32]) -> anyhow::Result<()> {
    match pids {
        [] => Ok(()),
        _ if pids.iter().any(|&p| check_pid(p).is_ok()) => Ok(()),
        _ => bail!("none of the processes {pids:?} exists (--server-pid)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0 1 2 3";
        assert_eq!(cpu_time_from_stat(stat).unwrap(), Duration::from_millis(2800));
    }

    #[test]
    fn a_process_that_exits_in_the_window_is_named_and_the_others_counted() {
        let s = Duration::from_secs;
        let start = [(1, Some(s(10))), (2, Some(s(5))), (3, None), (4, Some(s(1)))];
        let end = |p| match p {
            1 => Some(s(13)),
            4 => Some(s(2)),
            _ => None,
        };
        let got = spent(&start, end);
        assert_eq!(got.time, s(4), "3 s of pid 1 and 1 s of pid 4");
        assert_eq!((got.counted, got.vanished.as_slice()), (2, [2, 3].as_slice()));
        assert!(got.note().is_some_and(|n| n.contains("[2, 3]")));
        assert_eq!(got.us_per(4), Some(1e6));
        let all_gone = spent(&[(1, Some(s(1)))], |_| None);
        assert_eq!(all_gone.us_per(4), None, "nothing read is no figure, not zero");
        assert_eq!(spent(&[(1, Some(s(1)))], |_| Some(s(2))).note(), None);
    }

    #[test]
    fn parent_pid_in_stat() {
        let stat = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0 1 2 3";
        assert_eq!(ppid_from_stat(stat), Some(1));
    }

    #[test]
    fn vmrss_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\nThreads:\t2\n";
        assert_eq!(rss_from_status(status), Some(1234));
    }
}

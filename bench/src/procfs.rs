//! What the bench reads about the server process from `/proc`: CPU time and resident memory.

use std::time::Duration;

use anyhow::{Context, bail};

/// User plus system CPU time of every thread of `pid` so far (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    cpu_time_from_stat(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))
}

/// The summed CPU time of several processes (a server made of more than one).
pub fn cpu_time_of(pids: &[u32]) -> anyhow::Result<Duration> {
    pids.iter().map(|&p| cpu_time(p)).sum()
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
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Fails early with a clear reason when `--server-pid` names no process.
pub fn check_pid(pid: u32) -> anyhow::Result<()> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!("no process {pid} (--server-pid)");
    }
    Ok(())
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

//! A node process's resident memory and CPU time, read from `/proc` (Linux).

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcessStats {
    pub pid: u32,
    pub rss_bytes: u64,
    /// User plus system CPU seconds since the process started.
    pub cpu_seconds: f64,
}

/// Why a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cannot read /proc/{pid}: {source}")]
    Read { pid: u32, source: std::io::Error },
    #[error("unexpected contents in /proc/{pid}/{file}")]
    Parse { pid: u32, file: &'static str },
}

/// Reads `pid`'s RSS and CPU seconds.
pub async fn read(pid: u32) -> Result<ProcessStats, StatsError> {
    let read = |file: &'static str| async move {
        tokio::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .await
            .map_err(|source| StatsError::Read { pid, source })
    };
    let status = read("status").await?;
    let stat = read("stat").await?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or(StatsError::Parse { pid, file: "status" })?;
    Ok(ProcessStats {
        pid,
        rss_bytes: rss_kib * 1024,
        cpu_seconds: cpu_ticks(&stat).ok_or(StatsError::Parse { pid, file: "stat" })? as f64 / TICKS_PER_SECOND,
    })
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name may hold spaces, so fields
/// are counted after its closing parenthesis: utime and stime are the 12th and 13th there.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// The machine's CPU ticks so far, all and stolen (taken by the hypervisor for other guests),
/// from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineTicks {
    pub total: u64,
    pub steal: u64,
}

impl MachineTicks {
    pub async fn read() -> Result<Self, StatsError> {
        let stat =
            tokio::fs::read_to_string("/proc/stat").await.map_err(|source| StatsError::Read { pid: 0, source })?;
        machine_ticks(&stat).ok_or(StatsError::Parse { pid: 0, file: "stat" })
    }

    /// The share of `since..self` the hypervisor stole, in percent.
    pub fn steal_percent_since(&self, since: MachineTicks) -> f64 {
        let total = self.total.saturating_sub(since.total);
        if total == 0 { 0.0 } else { 100.0 * self.steal.saturating_sub(since.steal) as f64 / total as f64 }
    }
}

/// `cpu  user nice system idle iowait irq softirq steal ...`: the sum of the first eight, and
/// the eighth.
fn machine_ticks(stat: &str) -> Option<MachineTicks> {
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    (fields.len() == 8).then(|| MachineTicks { total: fields.iter().sum(), steal: fields[7] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ticks_sum_the_first_eight_and_take_steal() {
        let stat = "cpu  100 1 20 800 5 0 4 70 0 0\ncpu0 50 0 10 400 2 0 2 35 0 0\n";
        assert_eq!(machine_ticks(stat), Some(MachineTicks { total: 1000, steal: 70 }));
        let later = MachineTicks { total: 1200, steal: 80 };
        assert_eq!(later.steal_percent_since(MachineTicks { total: 1000, steal: 70 }), 5.0);
    }

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        let stat = "42 (rookery node) S 1 42 42 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[tokio::test]
    async fn reads_this_process() {
        let stats = read(std::process::id()).await.expect("read /proc/self");
        assert!(stats.rss_bytes > 0);
    }
}

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
        tokio::fs::read_to_string(format!("/proc/{pid}/{file}")).await.map_err(|source| StatsError::Read { pid, source })
    };
    let status = read("status").await?;
    let stat = read("stat").await?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or(StatsError::Parse { pid, file: "status" })?;
    Ok(ProcessStats { pid, rss_bytes: rss_kib * 1024, cpu_seconds: cpu_ticks(&stat).ok_or(StatsError::Parse { pid, file: "stat" })? as f64 / TICKS_PER_SECOND })
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name may hold spaces, so fields
/// are counted after its closing parenthesis: utime and stime are the 12th and 13th there.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

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

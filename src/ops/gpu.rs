//! `host::gpu` — the NVIDIA GPUs of this host as nvidia-smi's CSV query reports them: the
//! whisper-server transcribes on one when it can, and otherwise every STT job goes to the paid
//! API. No nvidia-smi, or one that cannot reach a driver, is "no NVIDIA driver": a finding,
//! not an error.

use std::time::Duration;

use serde::Serialize;

use crate::ops::error::OpError;
use crate::ops::spec::{Example, Registrar, Spec};

/// The fields asked of nvidia-smi, in this order.
const QUERY: &str = "index,name,memory.used,memory.total,utilization.gpu,temperature.gpu";

#[derive(Debug, Serialize, PartialEq)]
pub struct Gpu {
    pub index: i64,
    pub name: String,
    /// MiB; None where nvidia-smi says [N/A].
    pub memory_used_mib: Option<i64>,
    pub memory_total_mib: Option<i64>,
    pub utilization_percent: Option<i64>,
    pub temperature_c: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Gpus {
    /// nvidia-smi answered.
    pub available: bool,
    /// "2 GPUs" or "no NVIDIA driver (…)".
    pub detail: String,
    pub gpus: Vec<Gpu>,
}

fn number(field: &str) -> Option<i64> {
    let f = field.trim();
    f.parse::<i64>()
        .ok()
        .or_else(|| f.parse::<f64>().ok().map(|x| x.round() as i64))
}

/// The lines of `nvidia-smi --query-gpu=… --format=csv,noheader,nounits`.
pub fn parse(text: &str) -> Vec<Gpu> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() < 6 {
                return None;
            }
            Some(Gpu {
                index: number(f[0])?,
                name: f[1].to_string(),
                memory_used_mib: number(f[2]),
                memory_total_mib: number(f[3]),
                utilization_percent: number(f[4]),
                temperature_c: number(f[5]),
            })
        })
        .collect()
}

pub async fn gpu() -> Result<Gpus, OpError> {
    let none = |why: String| Gpus {
        available: false,
        detail: format!("no NVIDIA driver ({why})"),
        gpus: Vec::new(),
    };
    let run = tokio::process::Command::new("nvidia-smi")
        .arg(format!("--query-gpu={QUERY}"))
        .arg("--format=csv,noheader,nounits")
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(20), run).await {
        Err(_) => return Ok(none("nvidia-smi gave no answer within 20s".into())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(none("nvidia-smi is not installed".into()));
        }
        Ok(Err(e)) => return Ok(none(format!("nvidia-smi could not run: {e}"))),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let text = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
        return Ok(none(format!("nvidia-smi: {text}")));
    }
    let gpus = parse(&String::from_utf8_lossy(&out.stdout));
    Ok(Gpus {
        available: true,
        detail: match gpus.len() {
            1 => "1 GPU".to_string(),
            n => format!("{n} GPUs"),
        },
        gpus,
    })
}

static GPU: Spec = Spec {
    module: "host",
    name: "gpu",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "This host's NVIDIA GPUs through nvidia-smi's CSV query: gpus (index, name, \
          memory_used_mib, memory_total_mib, utilization_percent, temperature_c; () where it \
          says [N/A]), available, detail. Without nvidia-smi, or when it cannot reach a driver, \
          available is false and detail says \"no NVIDIA driver\" and why: not an error.",
    examples: &[Example::new(
        "let g = host::gpu(); [g.available, g.gpus.len(), g.detail.starts_with(\"no NVIDIA driver\") != g.available]",
        r#"[false, 0, true]"#,
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&GPU, |c| c.block(gpu()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nvidia_smi_csv_with_not_available_fields() {
        let gpus = parse(
            "0, NVIDIA GeForce RTX 3090, 10240, 24576, 37, 61\n1, Tesla T4, [N/A], 15360, [N/A], 40\n",
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA GeForce RTX 3090");
        assert_eq!(
            (gpus[0].memory_used_mib, gpus[0].utilization_percent),
            (Some(10240), Some(37))
        );
        assert_eq!(
            (gpus[1].memory_used_mib, gpus[1].temperature_c),
            (None, Some(40))
        );
    }
}

//! `models::` — the deployment's model servers as they answer, not only whether they answer.
//!
//! Facts from the deployment's code. whisper-server GET /health answers
//! {"status":"healthy","model":…,"device":"cuda"|"cpu"} or 503 {"detail":…}; the STT workers
//! use it only when device names cuda or gpu, and otherwise send every job to the paid OpenAI
//! fallback. embedding-server GET /health answers {"status","model","type","dimension",
//! "device"}; a dimension other than youtube_content's vector size means no vector can be
//! written. A body that is not JSON is reported with its status code and first bytes.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::config::key;
use crate::ops::Target;
use crate::ops::error::OpError;
use crate::ops::host::{HTTP_OPTIONS, HttpCheck, http_check};
use crate::ops::spec::{Example, Kind, Param, Registrar, Spec};

#[derive(Debug, Default, Serialize)]
pub struct ModelHealth {
    pub name: String,
    pub url: String,
    /// whisper, embedding, or http (a server whose body is not read).
    pub kind: String,
    /// ok, warning or critical.
    pub status: String,
    pub detail: String,
    pub http_status: Option<i64>,
    pub ms: f64,
    pub model: Option<String>,
    pub device: Option<String>,
    /// embedding-server: the dimension it embeds to, and the collection's vector size.
    pub dimension: Option<i64>,
    pub expected_dimension: Option<i64>,
}

fn kind_of(name: &str) -> &'static str {
    if name.contains("whisper") {
        "whisper"
    } else if name.contains("embedding") {
        "embedding"
    } else {
        "http"
    }
}

/// The first bytes of a body, for a report.
fn start(body: &str) -> String {
    let s: String = body.chars().take(60).collect();
    if body.chars().count() > 60 {
        format!("{s}…")
    } else {
        s
    }
}

/// The vector size embeddings must have: youtube_content's, or the setting when Qdrant
/// cannot be read (said in the second value).
async fn expected_size(target: &Target) -> (i64, Option<String>) {
    let collection = target
        .settings
        .text(key::QDRANT_CONTENT_COLLECTION)
        .to_string();
    match crate::ops::qdrant::info(target, &collection)
        .await
        .map(|i| i.vector_size)
    {
        Ok(size) if size > 0 => (size as i64, None),
        Ok(_) => (
            target.settings.int(key::QDRANT_VECTOR_SIZE),
            Some(format!("{collection} has no vector size")),
        ),
        Err(e) => (
            target.settings.int(key::QDRANT_VECTOR_SIZE),
            Some(format!("{collection} not read: {e}")),
        ),
    }
}

/// Judges one answer; Qdrant is asked for the vector size only when an embedding body needs it.
pub async fn judge(target: &Target, name: &str, h: HttpCheck) -> ModelHealth {
    let kind = kind_of(name);
    let mut m = ModelHealth {
        name: name.to_string(),
        url: h.url.clone(),
        kind: kind.into(),
        http_status: h.status,
        ms: h.ms,
        ..ModelHealth::default()
    };
    let body: Option<Value> = serde_json::from_str(&h.body).ok();
    let Some(status) = h.status else {
        m.status = "critical".into();
        m.detail = h.error.unwrap_or_default();
        return m;
    };
    if !h.ok {
        m.status = "critical".into();
        m.detail = match body.as_ref().and_then(|b| b.get("detail")) {
            Some(d) => format!(
                "HTTP {status}: {}",
                d.as_str().map_or(d.to_string(), str::to_string)
            ),
            None => format!("HTTP {status}: {}", start(&h.body)),
        };
        return m;
    }
    if kind == "http" {
        m.status = "ok".into();
        m.detail = format!("HTTP {status} in {} ms", h.ms);
        return m;
    }
    let Some(Value::Object(b)) = body else {
        m.status = "warning".into();
        m.detail = format!(
            "HTTP {status}, a body that is not JSON: {:?}",
            start(&h.body)
        );
        return m;
    };
    let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    m.model = text("model");
    m.device = text("device");
    let device = m.device.clone().unwrap_or_default();
    let model = m.model.clone().unwrap_or_else(|| "?".into());
    let server_status = text("status").unwrap_or_default();
    if kind == "whisper" {
        let gpu = {
            let d = device.to_lowercase();
            d.contains("cuda") || d.contains("gpu")
        };
        if gpu {
            m.status = "ok".into();
            m.detail = format!("model {model} on {device}, {server_status}");
        } else {
            m.status = "warning".into();
            m.detail = format!(
                "model {model} on {}: the STT workers use whisper-server only on cuda or gpu, so every job goes to the paid OpenAI API",
                if device.is_empty() {
                    "no device named"
                } else {
                    &device
                }
            );
        }
        return m;
    }
    m.dimension = b.get("dimension").and_then(Value::as_i64);
    let (expected, why) = expected_size(target).await;
    m.expected_dimension = Some(expected);
    let collection = target.settings.text(key::QDRANT_CONTENT_COLLECTION);
    let against = match &why {
        None => format!("{collection}'s vector size {expected}"),
        Some(w) => format!("the setting qdrant.vector_size {expected} ({w})"),
    };
    let kind_text = text("type").map(|t| format!(" ({t})")).unwrap_or_default();
    match m.dimension {
        Some(d) if d == expected => {
            m.status = "ok".into();
            m.detail = format!("model {model}{kind_text} on {device}, dimension {d} = {against}");
        }
        Some(d) => {
            m.status = "critical".into();
            m.detail = format!(
                "model {model}{kind_text} embeds to dimension {d}, but {against}: no vector can be written"
            );
        }
        None => {
            m.status = "warning".into();
            m.detail = format!(
                "model {model}{kind_text}: the body names no dimension to compare with {against}"
            );
        }
    }
    m
}

pub async fn health(
    target: &Target,
    name: &str,
    url: &str,
    timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<ModelHealth, OpError> {
    let h = http_check(url, timeout, ca_file).await;
    Ok(judge(target, name, h).await)
}

static HEALTH: Spec = Spec {
    module: "models",
    name: "health",
    params: &[
        Param::new(
            "name",
            Kind::Str,
            "the server's name: one with whisper or embedding in it has its body read",
        ),
        Param::new("url", Kind::Str, "its health URL"),
    ],
    options: HTTP_OPTIONS,
    returns: "Map",
    doc: "GETs a model server's health URL and reads its body. whisper-server: ok on cuda or \
          gpu, a warning on anything else (the STT workers then send every job to the paid \
          OpenAI API), critical on a 503 (its detail) or no answer. embedding-server: critical \
          when its dimension differs from the vector size of qdrant.content_collection (the \
          setting qdrant.vector_size when Qdrant cannot be read), since no vector can be \
          written. A 2xx body that is not JSON is a warning with the status code and its first \
          bytes. Other names: ok on any 2xx. Returns name, url, kind, status, detail, \
          http_status, ms, model, device, dimension, expected_dimension.",
    examples: &[Example::new(
        r#"let m = models::health("whisper-server", "http://127.0.0.1:9/health", #{timeout: "2s"}); [m.kind, m.status, m.http_status]"#,
        r#"["whisper", "critical", null]"#,
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&HEALTH, |c| {
        let (name, url) = (c.str("name")?, c.str("url")?);
        let timeout = c.duration("timeout")?;
        let ca_file = c
            .opt_str("ca_file")?
            .filter(|f| !f.trim().is_empty())
            .map(|f| crate::config::expand_home(&f));
        c.block(health(c.target, &name, &url, timeout, ca_file.as_deref()))
    });
}

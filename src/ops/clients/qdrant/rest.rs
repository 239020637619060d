//! Qdrant's REST API (6333): what gRPC does not offer — snapshot download and upload, shard
//! snapshots, `/cluster`. One [`Rest`] is one server's base URL with the API key and the roots
//! gRPC trusts; [`Rest::at`] gives the same for another peer of a cluster.

use http_body_util::BodyExt;
use hyper::body::Bytes;
use serde_json::Value;

use crate::config::redact_url;
use crate::ops::error::{Backend, ErrorKind, OpError};

#[derive(Clone, Debug)]
pub struct Rest {
    /// The base URL, without a trailing slash.
    pub url: String,
    /// The setting (and its origin) an unreachable address is blamed on.
    pub setting: String,
    api_key: Option<String>,
    /// qdrant.ca_file's certificates: an `https://` REST URL trusts the same roots as gRPC.
    ca: Option<crate::tls::CaFile>,
}

impl Rest {
    pub fn new(
        url: &str,
        setting: String,
        api_key: Option<String>,
        ca: Option<crate::tls::CaFile>,
    ) -> Rest {
        Rest {
            url: url.trim_end_matches('/').to_string(),
            setting,
            api_key,
            ca,
        }
    }

    /// The same credentials at another address (a peer of the cluster), blamed on `setting`.
    pub fn at(&self, url: &str, setting: impl Into<String>) -> Rest {
        Rest {
            url: url.trim_end_matches('/').to_string(),
            setting: setting.into(),
            ..self.clone()
        }
    }

    /// The address as shown in messages (a password redacted).
    pub fn shown(&self) -> String {
        redact_url(&self.url)
    }

    /// One request with an optional JSON body; the answer's JSON on success (2xx), else
    /// Qdrant's own message as the error.
    pub async fn json(
        &self,
        backend: &Backend,
        method: hyper::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, OpError> {
        let uri = self.uri(backend, path)?;
        let mut request = hyper::Request::builder().method(method).uri(uri);
        let bytes = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let response = self
            .send(backend, request, http_body_util::Full::new(bytes))
            .await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| {
                OpError::backend(
                    backend,
                    ErrorKind::Failed,
                    format!("REST {}: {e}", self.shown()),
                )
            })?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(self.status_error(backend, status, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            OpError::backend(
                backend,
                ErrorKind::Failed,
                format!("REST {}{path}: the answer is not JSON: {e}", self.shown()),
            )
        })
    }

    /// A GET whose answer's `result` is returned.
    pub async fn get_result(&self, backend: &Backend, path: &str) -> Result<Value, OpError> {
        let mut answer = self.json(backend, hyper::Method::GET, path, None).await?;
        Ok(answer["result"].take())
    }

    /// One GET into a file: the status checked, the body streamed to `out`, hashed on the way.
    /// Returns the byte count and the sha256 as lowercase hex.
    pub async fn download(
        &self,
        backend: &Backend,
        path: &str,
        out: &mut tokio::fs::File,
    ) -> Result<(u64, String), OpError> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;

        let uri = self.uri(backend, path)?;
        let response = self
            .send(
                backend,
                hyper::Request::get(uri),
                http_body_util::Empty::<Bytes>::new(),
            )
            .await?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(self.status_error(backend, status, &String::from_utf8_lossy(&bytes)));
        }
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                OpError::backend(
                    backend,
                    ErrorKind::Failed,
                    format!("REST {}: {e}", self.shown()),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                hasher.update(&data);
                size += data.len() as u64;
                out.write_all(&data).await.map_err(|e| {
                    OpError::backend(backend, ErrorKind::Failed, format!("writing: {e}"))
                })?;
            }
        }
        out.flush()
            .await
            .map_err(|e| OpError::backend(backend, ErrorKind::Failed, format!("writing: {e}")))?;
        let digest = hasher.finalize();
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok((size, hex))
    }

    /// One multipart POST of a file as the form field `snapshot` (Qdrant's snapshot upload):
    /// `path` carries the query (`?wait=true&checksum=…`, so Qdrant checks what arrived). The
    /// file is streamed from disk in 256 KiB chunks behind the multipart head (with a
    /// Content-Length), never read into memory whole.
    pub async fn upload(
        &self,
        backend: &Backend,
        path: &str,
        file: &std::path::Path,
    ) -> Result<Value, OpError> {
        use futures_util::StreamExt;
        use hyper::body::Frame;
        use tokio::io::AsyncReadExt;

        let uri = self.uri(backend, path)?;
        let unreadable = |e: std::io::Error| {
            OpError::new(
                ErrorKind::Failed,
                None,
                format!("cannot read {}: {e}", file.display()),
            )
        };
        let opened = tokio::fs::File::open(file).await.map_err(unreadable)?;
        let size = opened.metadata().await.map_err(unreadable)?.len();
        let boundary = format!("opsh-{:016x}", rand_u64());
        let safe_name: String = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snapshot".into())
            .chars()
            .filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n'))
            .collect();
        let head = Bytes::from(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"{safe_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        let length = head.len() as u64 + size + tail.len() as u64;
        let chunks = futures_util::stream::unfold(Some(opened), |state| async move {
            let mut f = state?;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(Bytes::from(buf))), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        let frames = futures_util::stream::iter([Ok::<_, std::io::Error>(Frame::data(head))])
            .chain(chunks)
            .chain(futures_util::stream::iter([Ok(Frame::data(tail))]));
        let body = http_body_util::StreamBody::new(frames).boxed_unsync();
        let request = hyper::Request::post(uri)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("content-length", length);
        let response = self.send(backend, request, body).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(self.status_error(backend, status, &text));
        }
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }

    /// The address of `path` on this server.
    fn uri(&self, backend: &Backend, path: &str) -> Result<hyper::Uri, OpError> {
        format!("{}{path}", self.url).parse().map_err(|e| {
            OpError::backend(
                backend,
                ErrorKind::Invalid,
                format!("{}: {e}", self.setting),
            )
        })
    }

    /// Sends one request: the one place a request is built (the api-key header when one is
    /// configured, https with the roots gRPC trusts) and sent; a request that got no answer is
    /// an error in words.
    async fn send<B>(
        &self,
        backend: &Backend,
        request: hyper::http::request::Builder,
        body: B,
    ) -> Result<hyper::Response<hyper::body::Incoming>, OpError>
    where
        B: hyper::body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let builder =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
        let mut request = request;
        if let Some(key) = &self.api_key {
            request = request.header("api-key", key);
        }
        let request = request
            .body(body)
            .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
        let sent = if self.url.starts_with("https:") {
            let tls = crate::tls::client_config(self.ca.as_ref(), None, &[])
                .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .build();
            builder.build::<_, B>(https).request(request).await
        } else {
            builder.build_http::<B>().request(request).await
        };
        sent.map_err(|e| self.unanswered(backend, &e))
    }

    /// A request that got no answer: what happened in words where the chain tells, else the
    /// chain itself.
    fn unanswered(&self, backend: &Backend, e: &(dyn std::error::Error + 'static)) -> OpError {
        let shown = self.shown();
        let label = format!("{backend} (REST {shown})");
        let (kind, cause) = crate::ops::clients::transport(&label, e, None)
            .unwrap_or_else(|| (ErrorKind::Unreachable, super::chain(e)));
        let cause = crate::ops::clients::tls_hint(cause, super::TLS_HINT, None);
        // The REST address has a setting of its own (qdrant.rest_url, or qdrant.peers for a
        // peer): that one is named.
        let rest = Backend {
            setting: self.setting.clone(),
            ..backend.clone()
        };
        OpError::backend(&rest, kind, format!("REST {shown}: {cause}"))
    }

    /// An answer that is not a success: Qdrant's own message (`status.error`) when the body has
    /// one, else the body's start; refused for 401/403, not found for 404.
    fn status_error(&self, backend: &Backend, status: hyper::StatusCode, text: &str) -> OpError {
        let message = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v["status"]["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().chars().take(200).collect());
        let kind = match status.as_u16() {
            401 | 403 => ErrorKind::Refused,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Failed,
        };
        OpError::backend(
            backend,
            kind,
            format!("REST {}: HTTP {status}: {message}", self.shown()),
        )
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

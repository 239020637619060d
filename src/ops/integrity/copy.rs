//! Reading a column out of PostgreSQL with COPY: the text format's escapes, and the task that
//! streams the rows beside the Qdrant scroll on a connection closed unless it ended cleanly.

use futures_util::StreamExt;

use crate::ops::Target;
use crate::ops::error::OpError;

/// Decodes one field of COPY's text format.
pub(super) fn unescape(field: &[u8]) -> String {
    if !field.contains(&b'\\') {
        return String::from_utf8_lossy(field).into_owned();
    }
    let mut out = Vec::with_capacity(field.len());
    let mut it = field.iter().copied();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'b') => out.push(8),
            Some(b'f') => out.push(12),
            Some(b'v') => out.push(11),
            Some(other) => out.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Streams one text column out of PostgreSQL with COPY on a task of its own (so its parsing
/// runs beside the Qdrant scroll, not between its pages), handing each value to `each`; the
/// task ends with what `finish` makes of them.
pub(super) async fn copy_column<T: Send + 'static>(
    target: &Target,
    select: &str,
    mut state: T,
    mut each: impl FnMut(&mut T, &[u8]) + Send + 'static,
    finish: impl FnOnce(T) -> T + Send + 'static,
) -> Result<crate::ops::AbortOnDrop<Result<T, OpError>>, OpError> {
    let pool = target.pg().await?.clone();
    let backend = target.pg_backend().clone();
    // `select` was prepared whole by `refuse_bad_sql` (one statement); the line break keeps a
    // trailing `--` comment of a filter from swallowing the closing parenthesis.
    let statement = format!("COPY ({select}\n) TO STDOUT");
    let task = tokio::spawn(async move {
        let pg_err = crate::ops::clients::postgres::error(&backend);
        let mut conn = Closing(pool.acquire().await.map_err(&pg_err)?, false);
        // A configured filter runs inside the COPY: whatever it tries to write is refused.
        sqlx::raw_sql("START TRANSACTION READ ONLY")
            .execute(&mut *conn.0)
            .await
            .map_err(&pg_err)?;
        let mut stream = conn.0.copy_out_raw(&statement).await.map_err(&pg_err)?;
        // PostgreSQL sends each row as a message of its own, but a line may still be split
        // across messages (or several share one): `rest` holds a line not yet ended.
        let mut rest: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(&pg_err)?;
            let mut data: &[u8] = &chunk;
            if !rest.is_empty() {
                let Some(nl) = memchr::memchr(b'\n', data) else {
                    rest.extend_from_slice(data);
                    continue;
                };
                rest.extend_from_slice(&data[..nl]);
                each(&mut state, &rest);
                rest.clear();
                data = &data[nl + 1..];
            }
            while let Some(nl) = memchr::memchr(b'\n', data) {
                each(&mut state, &data[..nl]);
                data = &data[nl + 1..];
            }
            rest.extend_from_slice(data);
        }
        if !rest.is_empty() {
            each(&mut state, &rest);
        }
        drop(stream);
        sqlx::raw_sql("COMMIT")
            .execute(&mut *conn.0)
            .await
            .map_err(&pg_err)?;
        conn.1 = true;
        Ok::<T, OpError>(finish(state))
    });
    Ok(crate::ops::AbortOnDrop(task))
}

/// A pooled connection that goes back to the pool only when its work ended cleanly (`.1`): a
/// COPY that failed or was dropped half read leaves the connection out of step with the
/// server (the next query would read the COPY's leftovers), so it is closed instead.
struct Closing(sqlx::pool::PoolConnection<sqlx::Postgres>, bool);

impl Drop for Closing {
    fn drop(&mut self) {
        if !self.1 {
            self.0.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_are_undone() {
        assert_eq!(unescape(br"a\\b\tc"), "a\\b\tc");
        assert_eq!(unescape(b"plain"), "plain");
    }
}

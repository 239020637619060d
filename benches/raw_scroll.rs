//! The check-data benchmark's raw Qdrant stream: a full id scroll of a collection as any client
//! does it — one page after another, no payload, no vectors — counting the ids and nothing else.
//!
//!     target/release/examples/raw_scroll GRPC_URL COLLECTION [PAGE_SIZE]
//!
//! Built by benches/check_data.sh (`cargo build --release --example raw_scroll`).

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{ScrollPointsBuilder, with_payload_selector, with_vectors_selector};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, collection, rest @ ..] = args.as_slice() else {
        return Err("usage: raw_scroll GRPC_URL COLLECTION [PAGE_SIZE]".into());
    };
    let page: u32 = rest.first().map_or(Ok(10_000), |p| p.parse())?;
    let client = Qdrant::from_url(url).skip_compatibility_check().build()?;
    let (mut count, mut offset) = (0u64, None);
    loop {
        let mut request = ScrollPointsBuilder::new(collection)
            .limit(page)
            .with_payload(with_payload_selector::SelectorOptions::Enable(false))
            .with_vectors(with_vectors_selector::SelectorOptions::Enable(false));
        if let Some(o) = offset.take() {
            request = request.offset(o);
        }
        let reply = client.scroll(request).await?;
        count += reply.result.len() as u64;
        match reply.next_page_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    println!("{count}");
    Ok(())
}

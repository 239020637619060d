//! Point ids, scroll, count, get and delete through the real qdrant-client, as opsh calls them.

mod common;

use std::collections::HashSet;

use common::{create_small, id_text, start, status_of, upsert_ids};
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, DeletePointsBuilder, Filter, GetPointsBuilder, PointId,
    PointStruct, PointsIdsList, ScrollPointsBuilder, UpsertPointsBuilder,
};
use qdrant_double::Options;

fn num(n: u64) -> PointId {
    n.into()
}

fn text(s: &str) -> PointId {
    s.to_string().into()
}

#[tokio::test]
async fn uuid_ids_in_every_accepted_form_are_stored_and_answered_hyphenated_lowercase() {
    let (_double, client) = start(Options::default());
    create_small(&client, "ids").await;
    upsert_ids(
        &client,
        "ids",
        &[
            num(7),
            // An MD5 hex digest (md5("hello")): Qdrant reads 32 hex digits as a UUID.
            text("5d41402abc4b2a76b9719d911017c592"),
            text("6F9619FF-8B86-D011-B42D-00C04FC964FF"),
            // Braced and urn forms: real Qdrant reads point ids with uuid's `Uuid::parse_str`,
            // which takes them, so they are stored under the same UUID, not refused.
            text("{a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8}"),
            text("urn:uuid:f9168c5e-ceb2-4faa-b6bf-329bf39fa1e4"),
        ],
    )
    .await;

    let page = client
        .scroll(ScrollPointsBuilder::new("ids").limit(10))
        .await
        .unwrap();
    let ids: Vec<String> = page
        .result
        .iter()
        .map(|p| id_text(p.id.as_ref().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            "7",
            "5d41402a-bc4b-2a76-b971-9d911017c592",
            "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8",
            "f9168c5e-ceb2-4faa-b6bf-329bf39fa1e4",
        ]
    );

    // Any form finds the same point; the answer is always the hyphenated lowercase form.
    let got = client
        .get_points(GetPointsBuilder::new(
            "ids",
            vec![
                text("5D41402A-BC4B-2A76-B971-9D911017C592"),
                text("6f9619ff8b86d011b42d00c04fc964ff"),
            ],
        ))
        .await
        .unwrap();
    let got: Vec<String> = got
        .result
        .iter()
        .map(|p| id_text(p.id.as_ref().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            "5d41402a-bc4b-2a76-b971-9d911017c592",
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        ]
    );

    // Re-upserting the same UUID in another form replaces the point instead of adding one.
    upsert_ids(&client, "ids", &[text("5D41402ABC4B2A76B9719D911017C592")]).await;
    let count = client
        .count(CountPointsBuilder::new("ids").exact(true))
        .await
        .unwrap();
    assert_eq!(count.result.unwrap().count, 5);
}

#[tokio::test]
async fn text_that_is_no_uuid_is_refused_like_qdrant() {
    let (_double, client) = start(Options::default());
    create_small(&client, "bad").await;
    for bad in [
        "not-a-uuid",
        "12345",
        "5d41402abc4b2a76b9719d911017c59",
        "5d41402a-bc4b-2a76-b971-9d911017c592-00",
        "",
    ] {
        let err = client
            .upsert_points(UpsertPointsBuilder::new(
                "bad",
                vec![PointStruct::new(
                    text(bad),
                    vec![1.0, 0.0, 0.0, 0.0],
                    [("a", 1.into())],
                )],
            ))
            .await
            .unwrap_err();
        let status = status_of(err);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad}");
        assert_eq!(status.message(), format!("Unable to parse UUID: {bad}"));

        let err = client
            .get_points(GetPointsBuilder::new("bad", vec![text(bad)]))
            .await
            .unwrap_err();
        assert_eq!(
            status_of(err).message(),
            format!("Unable to parse UUID: {bad}")
        );
    }
    let count = client.count(CountPointsBuilder::new("bad")).await.unwrap();
    assert_eq!(
        count.result.unwrap().count,
        0,
        "a refused batch stores nothing"
    );
}

fn uuid_of(i: u32) -> String {
    // Spread over the 128-bit range so the order by value differs from insertion order.
    let v = (u128::from(i)).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    uuid::Uuid::from_u128(v).to_string()
}

#[tokio::test]
async fn scroll_gives_numbers_before_uuids_and_every_id_exactly_once_across_pages() {
    let (_double, client) = start(Options::default());
    create_small(&client, "scroll").await;
    let mut ids: Vec<PointId> = Vec::new();
    for i in 0..60u32 {
        ids.push(text(&uuid_of(i)));
        ids.push(num(u64::from(i) * 1_000_003 % 977));
    }
    // Upsert in a shuffled order; half the UUIDs as 32-hex simple text.
    ids.reverse();
    let ids: Vec<PointId> = ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| match (&id.point_id_options, i % 2) {
            (Some(qdrant_client::qdrant::point_id::PointIdOptions::Uuid(u)), 0) => {
                text(&u.replace('-', ""))
            }
            _ => id,
        })
        .collect();
    upsert_ids(&client, "scroll", &ids).await;

    let mut expected_nums: Vec<u64> = (0..60u64).map(|i| i * 1_000_003 % 977).collect();
    expected_nums.sort();
    expected_nums.dedup();
    let mut expected_uuids: Vec<u128> = (0..60u32)
        .map(|i| uuid::Uuid::parse_str(&uuid_of(i)).unwrap().as_u128())
        .collect();
    expected_uuids.sort();
    let expected: Vec<String> = expected_nums
        .iter()
        .map(u64::to_string)
        .chain(
            expected_uuids
                .iter()
                .map(|v| uuid::Uuid::from_u128(*v).to_string()),
        )
        .collect();

    let mut seen = Vec::new();
    let mut offset: Option<PointId> = None;
    let mut pages = 0;
    loop {
        let mut request = ScrollPointsBuilder::new("scroll")
            .limit(7)
            .with_payload(false)
            .with_vectors(false);
        if let Some(offset) = offset.take() {
            request = request.offset(offset);
        }
        let page = client.scroll(request).await.unwrap();
        pages += 1;
        assert!(page.result.len() <= 7);
        for point in &page.result {
            assert!(point.payload.is_empty(), "with_payload(false) honoured");
            assert!(point.vectors.is_none(), "with_vectors(false) honoured");
            seen.push(id_text(point.id.as_ref().unwrap()));
        }
        match page.next_page_offset {
            // The offset is the first id of the next page (inclusive).
            Some(next) => {
                let next_text = id_text(&next);
                assert_eq!(
                    Some(&next_text),
                    expected.get(seen.len()),
                    "next_page_offset is the id after the page"
                );
                offset = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, expected.len().div_ceil(7));
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
}

#[tokio::test]
async fn scroll_defaults_return_payload_and_a_full_last_page_has_no_next_offset() {
    let (_double, client) = start(Options::default());
    create_small(&client, "c").await;
    upsert_ids(&client, "c", &[num(1), num(2), num(3), num(4)]).await;

    let page = client
        .scroll(ScrollPointsBuilder::new("c").limit(2).offset(num(3)))
        .await
        .unwrap();
    let ids: Vec<String> = page
        .result
        .iter()
        .map(|p| id_text(p.id.as_ref().unwrap()))
        .collect();
    assert_eq!(ids, ["3", "4"], "offset is inclusive");
    assert!(page.next_page_offset.is_none());
    assert_eq!(
        page.result[0]
            .payload
            .get("content_id")
            .map(ToString::to_string),
        Some("2".to_string()),
        "scroll returns the payload by default"
    );

    // An offset between ids starts at the next one.
    let page = client
        .scroll(ScrollPointsBuilder::new("c").limit(10).offset(num(0)))
        .await
        .unwrap();
    assert_eq!(page.result.len(), 4);

    // Qdrant's default page is 10; get by ids returns no payload unless asked.
    let got = client
        .get_points(GetPointsBuilder::new("c", vec![num(2), num(99)]))
        .await
        .unwrap();
    assert_eq!(got.result.len(), 1, "missing ids are left out");
    assert!(got.result[0].payload.is_empty());
    let got = client
        .get_points(
            GetPointsBuilder::new("c", vec![num(2)])
                .with_payload(true)
                .with_vectors(true),
        )
        .await
        .unwrap();
    assert_eq!(
        got.result[0]
            .payload
            .get("content_id")
            .map(ToString::to_string),
        Some("1".to_string())
    );
    let vector = got.result[0]
        .vectors
        .clone()
        .and_then(|v| v.vectors_options)
        .expect("vectors returned");
    match vector {
        qdrant_client::qdrant::vectors_output::VectorsOptions::Vector(v) => match v.into_vector() {
            qdrant_client::qdrant::vector_output::Vector::Dense(d) => {
                assert_eq!(d.data, vec![1.0, 0.0, 0.0, 0.0])
            }
            other => panic!("not dense: {other:?}"),
        },
        other => panic!("not the unnamed vector: {other:?}"),
    }
}

#[tokio::test]
async fn scroll_with_a_filter_pages_over_matching_points_only() {
    let (_double, client) = start(Options::default());
    create_small(&client, "f").await;
    let ids: Vec<PointId> = (0..30).map(num).collect();
    upsert_ids(&client, "f", &ids).await; // content_id = id
    let even = Filter::should(
        (0..30)
            .step_by(2)
            .map(|i| Condition::matches("content_id", i as i64)),
    );
    let mut seen = Vec::new();
    let mut offset = None;
    loop {
        let mut request = ScrollPointsBuilder::new("f").limit(4).filter(even.clone());
        if let Some(o) = offset.take() {
            request = request.offset(o);
        }
        let page = client.scroll(request).await.unwrap();
        seen.extend(page.result.iter().map(|p| id_text(p.id.as_ref().unwrap())));
        match page.next_page_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..30).step_by(2).map(|i: u64| i.to_string()).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn count_is_exact_with_and_without_a_filter() {
    let (_double, client) = start(Options::default());
    create_small(&client, "n").await;
    let ids: Vec<PointId> = (0..25)
        .map(num)
        .chain((0..10).map(|i| text(&uuid_of(i))))
        .collect();
    upsert_ids(&client, "n", &ids).await; // content_id = position 0..35
    let total = client
        .count(CountPointsBuilder::new("n").exact(true))
        .await
        .unwrap();
    assert_eq!(total.result.unwrap().count, 35);
    let filtered = client
        .count(
            CountPointsBuilder::new("n")
                .exact(true)
                .filter(Filter::must([Condition::range(
                    "content_id",
                    qdrant_client::qdrant::Range {
                        gte: Some(20.0),
                        ..Default::default()
                    },
                )])),
        )
        .await
        .unwrap();
    assert_eq!(filtered.result.unwrap().count, 15);
    let none = client
        .count(
            CountPointsBuilder::new("n")
                .exact(true)
                .filter(Filter::must([Condition::matches("content_id", 1000i64)])),
        )
        .await
        .unwrap();
    assert_eq!(none.result.unwrap().count, 0);
}

#[tokio::test]
async fn delete_by_ids_ignores_missing_ids() {
    let (_double, client) = start(Options::default());
    create_small(&client, "d").await;
    let md5 = "5d41402abc4b2a76b9719d911017c592";
    upsert_ids(&client, "d", &[num(1), num(2), num(3), text(md5)]).await;
    let response = client
        .delete_points(
            DeletePointsBuilder::new("d")
                .points(PointsIdsList {
                    ids: vec![
                        num(2),
                        num(404),
                        text("5D41402A-BC4B-2A76-B971-9D911017C592"),
                        text("00000000-0000-0000-0000-000000000404"),
                    ],
                })
                .wait(true),
        )
        .await
        .unwrap();
    assert_eq!(
        response.result.unwrap().status,
        qdrant_client::qdrant::UpdateStatus::Completed as i32
    );
    let left = client
        .scroll(ScrollPointsBuilder::new("d").limit(10))
        .await
        .unwrap();
    let left: Vec<String> = left
        .result
        .iter()
        .map(|p| id_text(p.id.as_ref().unwrap()))
        .collect();
    assert_eq!(left, ["1", "3"]);
}

#[tokio::test]
async fn delete_by_filter_on_integer_and_keyword_payload_fields() {
    let (_double, client) = start(Options::default());
    create_small(&client, "df").await;
    let points: Vec<PointStruct> = (0..12u64)
        .map(|i| {
            PointStruct::new(
                i,
                vec![0.0, 1.0, 0.0, 0.0],
                [
                    ("content_id", ((i % 3) as i64).into()),
                    ("kind", (if i < 6 { "chunk" } else { "summary" }).into()),
                ],
            )
        })
        .collect();
    client
        .upsert_points(UpsertPointsBuilder::new("df", points).wait(true))
        .await
        .unwrap();

    // content_id = 1 → ids 1, 4, 7, 10.
    client
        .delete_points(
            DeletePointsBuilder::new("df")
                .points(Filter::must([Condition::matches("content_id", 1i64)]))
                .wait(true),
        )
        .await
        .unwrap();
    // kind = "summary" and not has_id 8 → ids 6, 9, 11 (7 and 10 already gone).
    client
        .delete_points(
            DeletePointsBuilder::new("df")
                .points(Filter {
                    must: vec![Condition::matches("kind", "summary".to_string())],
                    must_not: vec![Condition::has_id([8u64])],
                    ..Default::default()
                })
                .wait(true),
        )
        .await
        .unwrap();
    // A keyword filter does not match an integer field: nothing deleted.
    client
        .delete_points(
            DeletePointsBuilder::new("df")
                .points(Filter::must([Condition::matches(
                    "content_id",
                    "0".to_string(),
                )]))
                .wait(true),
        )
        .await
        .unwrap();
    let left = client
        .scroll(ScrollPointsBuilder::new("df").limit(100))
        .await
        .unwrap();
    let left: Vec<String> = left
        .result
        .iter()
        .map(|p| id_text(p.id.as_ref().unwrap()))
        .collect();
    assert_eq!(left, ["0", "2", "3", "5", "8"]);
}

#[tokio::test]
async fn points_calls_on_a_missing_collection_are_not_found() {
    let (_double, client) = start(Options::default());
    let err = client
        .scroll(ScrollPointsBuilder::new("absent"))
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(
        status.message(),
        "Not found: Collection `absent` doesn't exist!"
    );
    let err = client
        .count(CountPointsBuilder::new("absent"))
        .await
        .unwrap_err();
    assert_eq!(status_of(err).code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_vector_of_the_wrong_size_is_refused() {
    let (_double, client) = start(Options::default());
    create_small(&client, "dim").await;
    let err = client
        .upsert_points(UpsertPointsBuilder::new(
            "dim",
            vec![PointStruct::new(
                1u64,
                vec![1.0, 2.0, 3.0],
                [("a", 1.into())],
            )],
        ))
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "Wrong input: Vector dimension error: expected dim: 4, got 3"
    );
}

#[tokio::test]
async fn what_opsh_does_not_use_is_unimplemented() {
    let (_double, client) = start(Options::default());
    create_small(&client, "u").await;
    let err = client
        .query(qdrant_client::qdrant::QueryPointsBuilder::new("u"))
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status.message().contains("not Qdrant"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn large_batches_and_pages_of_ten_thousand() {
    let (_double, client) = start(Options::default());
    create_small(&client, "big").await;
    let total = 30_000u64;
    for batch in 0..3u64 {
        let points: Vec<PointStruct> = (batch * 10_000..(batch + 1) * 10_000)
            .map(|i| {
                let id: PointId = if i % 3 == 0 {
                    text(&format!("{:032x}", u128::from(i) << 64 | 0xabc))
                } else {
                    num(i)
                };
                PointStruct::new(
                    id,
                    vec![1.0, 1.0, 1.0, 1.0],
                    [("content_id", (i as i64).into())],
                )
            })
            .collect();
        client
            .upsert_points(UpsertPointsBuilder::new("big", points).wait(true))
            .await
            .unwrap();
    }
    let mut seen = HashSet::new();
    let mut offset = None;
    loop {
        let mut request = ScrollPointsBuilder::new("big")
            .limit(10_000)
            .with_payload(false)
            .with_vectors(false);
        if let Some(o) = offset.take() {
            request = request.offset(o);
        }
        let page = client.scroll(request).await.unwrap();
        for p in &page.result {
            assert!(seen.insert(id_text(p.id.as_ref().unwrap())), "an id twice");
        }
        match page.next_page_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len() as u64, total);
}

/// The ids of one scroll page and its next offset, as text.
async fn page_from(
    client: &qdrant_client::Qdrant,
    offset: PointId,
    limit: u32,
) -> (Vec<String>, Option<String>) {
    let page = client
        .scroll(
            ScrollPointsBuilder::new("c")
                .limit(limit)
                .offset(offset)
                .with_payload(false),
        )
        .await
        .unwrap();
    let ids = page
        .result
        .iter()
        .map(|p| id_text(p.id.as_ref().unwrap()))
        .collect();
    (ids, page.next_page_offset.as_ref().map(id_text))
}

/// Pinned to a real Qdrant 1.18.3 (REST `points/scroll` with these ids and offsets, limit 2):
/// an offset is a lower bound in Qdrant's order whether or not a point has that id; a number
/// past every number starts at the first UUID, a UUID offset skips every number, and UUIDs
/// order by their 128-bit value (the bytes as written).
#[tokio::test]
async fn a_scroll_offset_is_a_lower_bound_present_or_not_numbers_then_uuids() {
    let (_double, client) = start(Options::default());
    create_small(&client, "c").await;
    let max = u64::MAX.to_string();
    upsert_ids(
        &client,
        "c",
        &[
            num(5),
            num(10),
            num(u64::MAX),
            text("00000000-0000-0000-0000-000000000005"),
            text("80000000-0000-0000-0000-000000000000"),
            text("00ff0000-0000-0000-0000-000000000000"),
            text("ff000000-0000-0000-0000-000000000000"),
            text("00000000-0000-0000-0000-0000000000ff"),
        ],
    )
    .await;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases: Vec<(PointId, Vec<String>, Option<String>)> = vec![
        (num(0), s(&["5", "10"]), Some(max.clone())),
        (
            num(6),
            s(&["10", &max]),
            Some("00000000-0000-0000-0000-000000000005".into()),
        ),
        (
            num(10),
            s(&["10", &max]),
            Some("00000000-0000-0000-0000-000000000005".into()),
        ),
        (
            num(11),
            s(&[&max, "00000000-0000-0000-0000-000000000005"]),
            Some("00000000-0000-0000-0000-0000000000ff".into()),
        ),
        (
            text("00000000-0000-0000-0000-000000000000"),
            s(&[
                "00000000-0000-0000-0000-000000000005",
                "00000000-0000-0000-0000-0000000000ff",
            ]),
            Some("00ff0000-0000-0000-0000-000000000000".into()),
        ),
        (
            text("00000000-0000-0000-0000-000000000006"),
            s(&[
                "00000000-0000-0000-0000-0000000000ff",
                "00ff0000-0000-0000-0000-000000000000",
            ]),
            Some("80000000-0000-0000-0000-000000000000".into()),
        ),
        (
            text("80000000-0000-0000-0000-000000000001"),
            s(&["ff000000-0000-0000-0000-000000000000"]),
            None,
        ),
        (text("ffffffff-ffff-ffff-ffff-ffffffffffff"), vec![], None),
    ];
    for (offset, ids, next) in cases {
        let shown = id_text(&offset);
        assert_eq!(
            page_from(&client, offset, 2).await,
            (ids, next),
            "offset {shown}"
        );
    }
}

/// Scrolls run at once, each from an offset of its own (as opsh's partitioned scroll does),
/// read together exactly what one scroll reads: each from its start until the next page
/// would begin at the next one's.
#[tokio::test]
async fn scrolls_at_once_from_many_offsets_read_what_one_scroll_reads() {
    let (_double, client) = start(Options::default());
    create_small(&client, "c").await;
    let mut ids: Vec<PointId> = (0..600u64).map(|i| num(i * 3)).collect();
    ids.extend((0..600u32).map(|i| text(&uuid_of(i))));
    upsert_ids(&client, "c", &ids).await;
    let mut all = Vec::new();
    let mut offset = None;
    loop {
        let mut request = ScrollPointsBuilder::new("c").limit(97).with_payload(false);
        if let Some(o) = offset.take() {
            request = request.offset(o);
        }
        let page = client.scroll(request).await.unwrap();
        all.extend(page.result.iter().map(|p| p.id.clone().unwrap()));
        match page.next_page_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    assert_eq!(all.len(), 1200);
    // Range starts on ids and between them, numbers and UUIDs; the last range runs to the end.
    let starts: Vec<PointId> = vec![
        num(0),
        num(300),
        num(301),
        num(1000),
        text("00000000-0000-0000-0000-000000000000"),
        all[900].clone(),
        text("80000000-0000-0000-0000-000000000000"),
    ];
    let tasks: Vec<_> = starts
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let (client, start, end) = (client.clone(), start.clone(), starts.get(i + 1).cloned());
            tokio::spawn(async move {
                let end = end.map(|e| common::order_key(&e));
                let mut got = Vec::new();
                let mut offset = Some(start);
                while let Some(o) = offset.take() {
                    let page = client
                        .scroll(
                            ScrollPointsBuilder::new("c")
                                .limit(13)
                                .offset(o)
                                .with_payload(false),
                        )
                        .await
                        .unwrap();
                    for p in page.result {
                        let id = p.id.unwrap();
                        if end.is_none_or(|e| common::order_key(&id) < e) {
                            got.push(id);
                        }
                    }
                    offset = page
                        .next_page_offset
                        .filter(|n| end.is_none_or(|e| common::order_key(n) < e));
                }
                got
            })
        })
        .collect();
    let mut together = Vec::new();
    for t in tasks {
        together.extend(t.await.unwrap());
    }
    assert_eq!(together, all);
}

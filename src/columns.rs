//! The column order of a result. Rhai maps keep their keys sorted, so an array of rows loses
//! the order its function or query gave its fields; a table should show them in that order
//! (`id, job_type, status, …`, not `age_seconds, content_id, …`).
//!
//! The order travels beside the value, as its Rhai tag: a number that indexes a list of column
//! lists kept here. The value itself (what scripts read, what `--json` prints) is unchanged; a
//! tag survives assignment and cloning, and a value a script builds anew (a `filter`, a map
//! literal) has none, so it is shown in key order as before.

use std::sync::{Arc, Mutex};

use rhai::Dynamic;
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Tags at or above this mark a column list (scripts' own tags are small numbers).
const BASE: i32 = 0x4F50_0000;
/// At most this many distinct column lists (db::query with ever new column sets): past it, new
/// ones are not remembered and their tables fall back to key order.
const MAX_LISTS: usize = 4096;

/// A scalar carries no column names: the visitors accept it and read nothing from it.
macro_rules! ignore_scalars {
    () => {
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
    };
}

static LISTS: Mutex<Vec<Arc<[String]>>> = Mutex::new(Vec::new());

/// Attaches a column order to a value (an array of maps or a map).
pub fn attach(value: &mut Dynamic, columns: &[String]) {
    if columns.is_empty() {
        return;
    }
    let Ok(mut lists) = LISTS.lock() else {
        return;
    };
    let index = match lists.iter().position(|l| &**l == columns) {
        Some(i) => i,
        None if lists.len() < MAX_LISTS => {
            lists.push(columns.into());
            lists.len() - 1
        }
        None => return,
    };
    if let Ok(index) = i32::try_from(index) {
        value.set_tag(BASE + index);
    }
}

/// The column order attached to a value, if any.
pub fn of(value: &Dynamic) -> Option<Arc<[String]>> {
    let index = usize::try_from(value.tag().checked_sub(BASE)?).ok()?;
    LISTS.lock().ok()?.get(index).cloned()
}

/// The field order of a serialisable result: a struct's fields, or for a list of structs the
/// fields of its first item. Read from serde_json's text, which writes fields in declaration
/// order; only the first 64 KiB are written, enough for any first row.
pub fn of_serialize<T: Serialize + ?Sized>(value: &T) -> Vec<String> {
    let mut prefix = Capped(Vec::new());
    let _ = serde_json::to_writer(&mut prefix, value);
    let mut keys = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(&prefix.0);
    // The text may be cut short: the keys read before the cut are what is wanted.
    let _ = Top(&mut keys).deserialize(&mut de);
    keys
}

/// A writer that stops taking bytes after 64 KiB.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() >= 64 * 1024 {
            return Err(std::io::Error::other("enough"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The top level: a map's keys, or the first item's keys of a sequence.
struct Top<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map or a list of maps")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            self.0.push(key);
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        seq.next_element_seed(Keys(self.0))?;
        // The rest is not needed; stopping here ends the parse with an error, which is fine.
        Err(de::Error::custom("first item read"))
    }
    ignore_scalars!();
}

/// The keys of one map (anything else: none).
struct Keys<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for Keys<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Top(self.0).only_maps())
    }
}

impl<'a> Top<'a> {
    fn only_maps(self) -> OnlyMaps<'a> {
        OnlyMaps(self.0)
    }
}

struct OnlyMaps<'a>(&'a mut Vec<String>);

impl<'de> Visitor<'de> for OnlyMaps<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Top(self.0).visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    ignore_scalars!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Job {
        id: i64,
        status: &'static str,
        age_seconds: f64,
    }

    #[test]
    fn the_fields_of_a_struct_and_of_a_list_of_structs_in_declaration_order() {
        let job = Job {
            id: 1,
            status: "pending",
            age_seconds: 2.0,
        };
        assert_eq!(of_serialize(&job), ["id", "status", "age_seconds"]);
        let jobs = vec![
            Job {
                id: 1,
                status: "x",
                age_seconds: 1.0,
            },
            Job {
                id: 2,
                status: "y",
                age_seconds: 1.0,
            },
        ];
        assert_eq!(of_serialize(&jobs), ["id", "status", "age_seconds"]);
        assert!(of_serialize(&vec![1, 2]).is_empty());
        assert!(of_serialize(&42).is_empty());
    }

    #[test]
    fn the_order_travels_with_the_value_and_its_clones() {
        let mut value = Dynamic::from_array(vec![Dynamic::from_map(rhai::Map::new())]);
        let columns = vec!["z".to_string(), "a".to_string()];
        attach(&mut value, &columns);
        let copy = value.clone();
        assert_eq!(of(&copy).as_deref(), Some(&columns[..]));
        assert_eq!(of(&Dynamic::from(1_i64)), None);
    }
}

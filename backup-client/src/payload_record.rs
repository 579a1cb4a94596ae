//! A split archive's payload record (the "padding record" of docs/FORMATS.md, stored as
//! `NAME.ptar.padding.blob`): what the next backup and a restore want to know of the
//! payload without reading it. Written by every backup of a
//! split archive (`upload`), read by the next backup (the dead bytes of re-used chunks) and
//! by a restore of the whole archive (whether it reads the payload forward only).
//!
//! Only an aid: a record that is missing (a snapshot from before it existed) or damaged is
//! logged and treated as absent, which costs efficiency, never correctness.

use anyhow::{Context, Result};
use api_client::http::Session;

/// What `NAME.ptar.padding.blob` holds (JSON in a blob).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PayloadRecord {
    /// (start offset of a re-used chunk in the payload, its bytes that no file uses).
    pub dead: Vec<(u64, u64)>,
    /// Every file's content lies after the previous file's (`EncodeStats::payload_in_order`).
    /// Absent (false) in records written before it existed.
    #[serde(default)]
    pub in_order: bool,
}

/// Uploads the payload record of `archive` (`NAME.tar`) into a backup session.
pub async fn upload(session: &Session, archive: &str, record: &PayloadRecord) -> Result<()> {
    let name = datastore::names::padding_blob_name(archive)
        .with_context(|| format!("'{archive}' is not NAME.tar"))?;
    let json = serde_json::to_vec(record)?;
    let blob = tokio::task::spawn_blocking(move || datastore::blob::encode(&json, true))
        .await
        .context("encoding the payload record failed")?;
    let path = format!(
        "{}?{}",
        protocol::routes::SESSION_BLOB.path,
        protocol::routes::encode_query(&[("file-name", &name)])
    );
    let _: serde_json::Value = session
        .clone()
        .call_json(
            hyper::Method::POST,
            &path,
            api_client::http::full_body(blob),
        )
        .await
        .with_context(|| format!("uploading {name}"))?;
    Ok(())
}

/// The payload record of `archive` in the snapshot a reader session reads, if it has a
/// usable one.
pub async fn download(reader: &Session, archive: &str) -> Option<PayloadRecord> {
    let name = datastore::names::padding_blob_name(archive)?;
    let path = crate::download::download_path(&name);
    let blob = match crate::chunked::target::get_if_exists(reader, &path).await {
        Ok(Some((_, blob))) => blob,
        Ok(None) => return None,
        Err(err) => {
            tracing::warn!("{name} could not be read: {err:#}");
            return None;
        }
    };
    let decoded = tokio::task::spawn_blocking(move || -> Result<PayloadRecord> {
        let json = datastore::blob::decode(&blob, protocol::limits::MAX_BLOB_SIZE)?;
        Ok(serde_json::from_slice(&json)?)
    })
    .await;
    match decoded {
        Ok(Ok(record)) => Some(record),
        Ok(Err(err)) => {
            tracing::warn!("{name} is damaged: {err:#}");
            None
        }
        Err(err) => {
            tracing::warn!("decoding {name} failed: {err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_before_the_order_was_kept_reads_as_out_of_order() {
        let old: PayloadRecord = serde_json::from_str(r#"{"dead": [[0, 20]]}"#).unwrap();
        assert_eq!(old.dead, [(0, 20)]);
        assert!(!old.in_order);
        let json = serde_json::to_string(&PayloadRecord {
            dead: vec![],
            in_order: true,
        })
        .unwrap();
        assert_eq!(json, r#"{"dead":[],"in_order":true}"#);
    }
}

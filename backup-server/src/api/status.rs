//! `GET /api2/json/admin/datastore/{store}/status`: disk, chunks, dedup, snapshots, last GC;
//! `GET .../chunker`: the chunker parameters a chunking client must cut with.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use protocol::types::{ChunkerConfig, DatastoreStatus};

use super::{PathParams, param};
use crate::error::{ApiResult, json_response};
use crate::http_util::blocking;
use crate::state::ServerState;

pub(super) async fn get(
    state: &ServerState,
    params: &PathParams,
) -> ApiResult<Response<Full<Bytes>>> {
    let open = state.open_store(param(params, "store")?)?;
    let name = open.name.clone();
    let store = open.store;
    let (status, last_gc) = blocking(move || {
        let status = datastore::status::store_status(&store)?;
        let last_gc = store.last_gc_status()?;
        Ok((status, last_gc))
    })
    .await?;
    json_response(&DatastoreStatus {
        store: name,
        total: status.total,
        used: status.used,
        avail: status.avail,
        chunk_count: status.chunk_count,
        bytes_stored: status.bytes_stored,
        logical_bytes: status.logical_bytes,
        dedup_factor: status.dedup_factor,
        snapshot_count: status.snapshot_count,
        group_count: status.group_count,
        last_gc: last_gc.map(|gc| serde_json::to_value(gc).unwrap_or_default()),
    })
}

pub(super) fn chunker(
    state: &ServerState,
    params: &PathParams,
    req: &hyper::Request<hyper::body::Incoming>,
) -> ApiResult<Response<Full<Bytes>>> {
    /// `ns` only scopes the privilege check (a backup token may hold its privilege on its
    /// namespace alone); the parameters are the store's.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        #[serde(default)]
        ns: String,
    }
    let query: Query = crate::http_util::parse_query(req.uri().query())?;
    query.ns.parse::<datastore::names::Namespace>()?;
    let open = state.open_store(param(params, "store")?)?;
    json_response(&ChunkerConfig {
        avg: open.chunker.avg as u64,
        min: open.chunker.min as u64,
        max: open.chunker.max as u64,
    })
}

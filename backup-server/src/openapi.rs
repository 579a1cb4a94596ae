//! The OpenAPI 3.1 document of the REST API, generated from `protocol::docs::ROUTE_DOCS`
//! (what each route takes and answers) and the server's privilege table (what it
//! requires). Served at `/api2/json/openapi.json` and printed by `backup-server openapi`.

use protocol::docs::{Param, route_doc};
use protocol::routes::{Method, REST_ROUTES};
use serde_json::{Map, Value, json};

use crate::api::privileges::{Requirement, requirement};

fn param_json(param: &Param, location: &str) -> Value {
    let (name, kind, required, description) = param;
    json!({ "name": name, "in": location, "required": *required || location == "path",
            "description": description, "schema": { "type": kind } })
}

fn privilege_json(req: Requirement) -> Value {
    match req {
        Requirement::Public => json!({ "check": "none (public)" }),
        Requirement::Authenticated => {
            json!({ "check": "authenticated; the handler limits results to the caller's own" })
        }
        Requirement::System(p) => {
            json!({ "check": "any of these privileges on /", "privileges": p.names() })
        }
        Requirement::DatastoreBody(p) => json!({
            "check": "any of these privileges on /datastore/{store}[/{ns}], ns from the body",
            "privileges": p.names(),
        }),
        Requirement::Datastore(p) => json!({
            "check": "any of these privileges on /datastore/{store}[/{ns}]",
            "privileges": p.names(),
        }),
    }
}

/// The whole document. Fails when a route lacks documentation or a privilege entry.
pub fn document() -> anyhow::Result<Value> {
    let mut paths = Map::new();
    for route in REST_ROUTES {
        let doc =
            route_doc(*route).ok_or_else(|| anyhow::anyhow!("{route:?} is not documented"))?;
        let req =
            requirement(*route).ok_or_else(|| anyhow::anyhow!("{route:?} has no privilege"))?;
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| param_json(&(name, "string", true, "path parameter"), "path"))
            .collect();
        parameters.extend(doc.query.iter().map(|p| param_json(p, "query")));
        let mut operation = json!({
            "summary": doc.summary,
            "parameters": parameters,
            "x-privileges": privilege_json(req),
            "responses": {
                "200": { "description": format!("data: {}", doc.answer) },
                "400": { "description": "malformed input: {\"error\": message}" },
                "401": { "description": "missing or wrong credentials" },
                "403": { "description": "the caller lacks the privilege" },
            },
        });
        if !doc.body.is_empty() {
            let properties: Map<String, Value> = doc
                .body
                .iter()
                .map(|(name, kind, _, description)| {
                    (
                        name.to_string(),
                        json!({ "type": kind, "description": description }),
                    )
                })
                .collect();
            let required: Vec<&str> = doc.body.iter().filter(|p| p.2).map(|p| p.0).collect();
            operation["requestBody"] = json!({ "content": { "application/json": { "schema": {
                "type": "object", "properties": properties, "required": required,
                "additionalProperties": false } } } });
        }
        if req == Requirement::Public {
            operation["security"] = json!([]);
        }
        let method = match route.method {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Delete => "delete",
        };
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": { "title": "backup-server REST API", "version": env!("CARGO_PKG_VERSION") },
        "components": { "securitySchemes": {
            "token": { "type": "apiKey", "in": "header", "name": "Authorization",
                       "description": "BackupAPIToken TOKENID:SECRET, or BackupAuthTicket TICKET" } } },
        "security": [{ "token": [] }],
        "paths": paths,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_with_its_privilege() {
        let doc = super::document().unwrap();
        for route in protocol::routes::REST_ROUTES {
            let method = format!("{:?}", route.method).to_lowercase();
            let op = &doc["paths"][route.path][&method];
            assert!(op["summary"].is_string(), "{route:?}");
            assert!(op["x-privileges"]["check"].is_string(), "{route:?}");
        }
    }

    #[test]
    fn the_committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let committed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(
            committed,
            super::document().unwrap(),
            "run `make docs` and commit docs/openapi.json"
        );
    }
}

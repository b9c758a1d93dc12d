//! The OpenAPI document (`GET /v1/openapi.json`) at the boundary: the real
//! server on port 0, fetched without a token. The router is built from the
//! handlers' annotations, so both directions are checked against what the
//! server really does: every documented operation is served (never 405 or
//! the web client's fallback), and every other method on a documented path
//! is 405, so no served method is missing from the document. Bodies and
//! errors reference schemas that exist.

mod common;

use common::*;
use parley_client::Method;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// A documented path with its parameters filled in (ids of the right kind
/// that name nothing).
fn concrete(path: &str) -> String {
    let id = if path.starts_with("/v1/media/") {
        "f999999"
    } else {
        "c999999"
    };
    path.replace("{user_id}", "u999999")
        .replace("{device_id}", "d999999")
        .replace("{id}", id)
}

/// Follows a `$ref` into `components.schemas`, which must hold it.
fn schema_exists(doc: &Value, schema: &Value, what: &str) {
    let reference = schema["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a $ref to a named schema: {schema}"));
    let name = reference
        .strip_prefix("#/components/schemas/")
        .unwrap_or_else(|| panic!("{what}: {reference}"));
    assert!(
        doc["components"]["schemas"][name].is_object(),
        "{what}: schema {name} missing"
    );
}

#[tokio::test]
async fn the_document_describes_every_route_the_server_serves() {
    let server = TestServer::start().await;
    let (status, doc) = server
        .client
        .raw(Method::GET, "/v1/openapi.json", None)
        .await
        .expect("fetch the document");
    assert_eq!(status, 200, "{doc}");
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "{version}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "the bearer scheme"
    );
    schema_exists(
        &doc,
        &serde_json::json!({"$ref": "#/components/schemas/ErrorBody"}),
        "error body",
    );

    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let url = concrete(path);
        for method in METHODS {
            let http = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let Some(operation) = item.get(method) else {
                // Not documented, so not served.
                let (status, body) = server.client.raw(http, &url, None).await.unwrap();
                assert_eq!(
                    status, 405,
                    "{method} {path} is served but not documented: {body}"
                );
                continue;
            };
            operations += 1;
            let what = format!("{method} {path}");
            let (status, body) = server.client.raw(http, &url, None).await.unwrap();
            assert_ne!(status, 405, "{what} documented but not served");
            assert!(
                status != 404 || body["error"]["code"] == "not_found",
                "{what} fell through to the web client: {body}"
            );
            let secured = operation.get("security").is_some();
            if secured {
                assert_eq!(status, 401, "{what} without a token: {body}");
                assert!(operation["responses"]["401"].is_object(), "{what}: 401");
            }
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                match content.get("application/json") {
                    Some(json) => schema_exists(&doc, &json["schema"], &what),
                    // Raw bytes (the media upload): nothing to follow.
                    None => assert_eq!(
                        content["application/octet-stream"]["schema"]["format"], "binary",
                        "{what}: a body that is neither JSON nor bytes: {content:?}"
                    ),
                }
            }
            for (code, response) in operation["responses"].as_object().expect("responses") {
                let Some(content) = response["content"].as_object() else {
                    continue;
                };
                if code.starts_with('2') {
                    // JSON names a schema; media bytes and text have none.
                    if let Some(json) = content.get("application/json")
                        && path != "/v1/openapi.json"
                    {
                        schema_exists(&doc, &json["schema"], &format!("{what} {code}"));
                    }
                } else if path.starts_with("/v1/") && !code.starts_with('1') {
                    let schema = &content
                        .get("application/json")
                        .unwrap_or_else(|| panic!("{what} {code}: {content:?}"))["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{what} {code}: the protocol's error body"
                    );
                }
            }
        }
    }
    // The public surface as of this test; a new endpoint raises it.
    assert!(operations >= 47, "only {operations} operations documented");
    constraints_are_the_protocol_limits(&doc);
}

/// The length limits written into request schemas (literals: the schema
/// attributes take no constants) are the protocol's, so they cannot drift.
fn constraints_are_the_protocol_limits(doc: &Value) {
    use parley_proto::limits::*;
    let field =
        |schema: &str, name: &str| doc["components"]["schemas"][schema]["properties"][name].clone();
    for schema in ["RegisterRequest", "AdminCreateUserRequest", "LoginRequest"] {
        let username = field(schema, "username");
        assert_eq!(username["minLength"], USERNAME_MIN_CHARS, "{schema}");
        assert_eq!(username["maxLength"], USERNAME_MAX_CHARS, "{schema}");
    }
    for schema in [
        "RegisterRequest",
        "AdminCreateUserRequest",
        "LoginRequest",
        "PasswordResetRequest",
    ] {
        let password = field(schema, "password");
        assert_eq!(password["minLength"], PASSWORD_MIN_CHARS, "{schema}");
        assert_eq!(password["maxLength"], PASSWORD_MAX_CHARS, "{schema}");
    }
    for schema in [
        "RegisterRequest",
        "AdminCreateUserRequest",
        "ProfileRequest",
    ] {
        let name = field(schema, "display_name");
        assert_eq!(name["maxLength"], DISPLAY_NAME_MAX_CHARS, "{schema}");
    }
}

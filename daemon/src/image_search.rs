//! `GET /images/search?term=&limit=&filters=`: a registry's catalog searched
//! for the term (`wrun_image::registry::search`), answered as dockerd's JSON
//! array; the daemon's own registry configuration applies.

use hyper::{HeaderMap, Response, StatusCode};
use wrun_api::images::ImageSearchResult;
use wrun_api::registry::AuthConfig;
use wrun_image::registry::{
    self, Access, Credentials, DEFAULT_LIMIT, RegistryConfig, RegistryError, RegistryOptions,
    SearchFilters, SearchQuery,
};

use crate::error::DaemonError;
use crate::http::{Body, Query, json, query_filters};
use crate::images::blocking;

/// The filters dockerd's search takes.
const SEARCH_FILTERS: [&str; 3] = ["stars", "is-official", "is-automated"];

/// The registry configuration of the daemon's process: its `config.json`
/// and `certs.d` (`$WRUN_CONFIG`, else `$XDG_CONFIG_HOME/wrun`, else
/// `~/.config/wrun`).
pub(crate) fn registry_config() -> Result<RegistryConfig, RegistryError> {
    Ok(RegistryConfig::load(&registry::wrun_config_dir()?)?)
}

/// How the daemon reaches `registry`: its configuration's options, the
/// transport found by reaching it. Blocking.
pub(crate) fn registry_options(registry: &str) -> Result<RegistryOptions, RegistryError> {
    let mut options = registry_config()?.options(None, false);
    options.reach(registry)?;
    Ok(options)
}

pub async fn search(query: &Query, headers: &HeaderMap) -> Result<Response<Body>, DaemonError> {
    let limit = match query.get("limit").filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT as i64,
        Some(l) => l.parse::<i64>().map_err(|_| {
            DaemonError::invalid(format!("strconv.Atoi: parsing {l:?}: invalid syntax"))
        })?,
    };
    let limit = usize::try_from(limit)
        .ok()
        .filter(|n| (1..=registry::MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            DaemonError::invalid(format!(
                "Limit {limit} is outside the range of [1, {}]",
                registry::MAX_LIMIT
            ))
        })?;
    let filters = query_filters(query.get("filters"), &SEARCH_FILTERS)?;
    let filters = SearchFilters::from_pairs(&filters.to_map()).map_err(bad_request)?;
    let auth = header_auth(headers)?.unwrap_or_default();
    let term = query.get("term").unwrap_or("").to_owned();
    let found = blocking("searching a registry", move || {
        let config = registry_config().map_err(internal)?;
        let query = SearchQuery::new(
            &term,
            None,
            config.default_registry.as_deref(),
            limit,
            filters,
        )
        .map_err(bad_request)?;
        let credentials = credentials(&auth, &query.registry)?;
        let mut options = registry_options(&query.registry).map_err(internal)?;
        options.auth = registry::registry_auth(
            &options,
            &query.registry,
            "",
            credentials.as_ref(),
            Access::Catalog,
        )
        .map_err(internal)?;
        registry::search(&options, &query).map_err(internal)
    })
    .await?;
    let found: Vec<ImageSearchResult> = found
        .into_iter()
        .map(|r| ImageSearchResult {
            name: r.name,
            description: r.description,
            star_count: r.star_count,
            is_official: r.is_official,
            is_automated: r.is_automated,
        })
        .collect();
    Ok(json(StatusCode::OK, &found))
}

/// The credentials of `X-Registry-Auth` for `registry`: none when it names
/// no user; refused when they are another registry's.
fn credentials(auth: &AuthConfig, registry: &str) -> Result<Option<Credentials>, DaemonError> {
    let server = auth
        .serveraddress
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let server = server.split('/').next().unwrap_or(server);
    if !server.is_empty() && server != registry {
        return Err(DaemonError::invalid(format!(
            "X-Registry-Auth holds credentials for {server}, not for {registry}: wrun sends a registry's credentials only to that registry"
        )));
    }
    Ok(auth
        .user_password()
        .map_err(DaemonError::invalid)?
        .map(|(username, password)| Credentials { username, password }))
}

fn bad_request(e: RegistryError) -> DaemonError {
    DaemonError::invalid(e.to_string())
}

/// A registry's failure: dockerd's 500, the error in one line.
fn internal(e: RegistryError) -> DaemonError {
    DaemonError::Internal(e.to_string())
}

/// The header of a registry's credentials (base64url JSON of an
/// [`AuthConfig`]).
pub(crate) const AUTH_HEADER: &str = "X-Registry-Auth";

/// `X-Registry-Auth` when sent and not empty (dockerd takes an empty one
/// as none: a pull or search without it is anonymous).
pub(crate) fn header_auth(headers: &HeaderMap) -> Result<Option<AuthConfig>, DaemonError> {
    let Some(value) = headers.get(AUTH_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| DaemonError::invalid(format!("{AUTH_HEADER} is not ASCII")))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    AuthConfig::from_header(text)
        .map(Some)
        .map_err(DaemonError::invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTH_HEADER, value.parse().unwrap());
        headers
    }

    #[test]
    fn an_empty_or_absent_auth_header_is_none_a_malformed_one_refused() {
        assert!(header_auth(&HeaderMap::new()).unwrap().is_none());
        assert!(header_auth(&with_auth("")).unwrap().is_none());
        assert!(header_auth(&with_auth("  ")).unwrap().is_none());
        let given = AuthConfig {
            username: "alice".into(),
            password: "pw".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..AuthConfig::default()
        };
        let read = header_auth(&with_auth(&given.to_header()))
            .unwrap()
            .unwrap();
        assert_eq!(read.username, "alice");
        assert!(header_auth(&with_auth("e30=x!")).is_err());
    }
}

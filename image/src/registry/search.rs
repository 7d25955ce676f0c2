//! Search a registry: the distribution spec has no search endpoint, so the
//! registry's catalog (`GET /v2/_catalog`, followed page by page through
//! its `Link` header) is filtered by the term, and each match's tags
//! (`GET /v2/NAME/tags/list`) become its description.

use std::collections::BTreeMap;

use oci_client::secrets::RegistryAuth;
use reqwest::StatusCode;
use reqwest::header::LINK;

use super::{RegistryError, RegistryOptions, Result, config::innermost, is_registry_host, runtime};

/// Repositories asked for in one catalog page.
const PAGE: usize = 100;
/// Catalog pages followed at most (a registry whose `Link` never ends).
const MAX_PAGES: usize = 1000;
/// The largest catalog page or tag list read.
const MAX_BODY: usize = 4 << 20;
/// Docker's bounds of `limit`, and its default.
pub const MAX_LIMIT: usize = 100;
pub const DEFAULT_LIMIT: usize = 25;

/// docker search's filters (`stars`, `is-official`, `is-automated`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchFilters {
    pub stars: Option<u64>,
    pub is_official: Option<bool>,
    pub is_automated: Option<bool>,
}

impl SearchFilters {
    /// Filters from `(name, values)` pairs, refused in dockerd's words
    /// (`Invalid filter 'stars=x'`).
    pub fn from_pairs(pairs: &BTreeMap<String, Vec<String>>) -> Result<SearchFilters> {
        let invalid = |message: String| RegistryError::Search { message };
        let mut filters = SearchFilters::default();
        for (name, values) in pairs {
            let boolean = |values: &[String]| -> Result<Option<bool>> {
                match values {
                    [] => Ok(None),
                    [v] if v == "true" || v == "1" => Ok(Some(true)),
                    [v] if v == "false" || v == "0" => Ok(Some(false)),
                    _ => Err(invalid(format!(
                        "Invalid filter '{name}=[{}]'",
                        values.join(" ")
                    ))),
                }
            };
            match name.as_str() {
                "stars" => {
                    // dockerd keeps the largest of several values.
                    for v in values {
                        let n: u64 = v
                            .parse()
                            .map_err(|_| invalid(format!("Invalid filter 'stars={v}'")))?;
                        filters.stars = Some(filters.stars.map_or(n, |s| s.max(n)));
                    }
                }
                "is-official" => filters.is_official = boolean(values)?,
                "is-automated" => filters.is_automated = boolean(values)?,
                _ => return Err(invalid(format!("Invalid filter '{name}'"))),
            }
        }
        Ok(filters)
    }

    fn admits(&self, r: &SearchResult) -> bool {
        self.stars.is_none_or(|s| r.star_count >= s)
            && self.is_official.is_none_or(|o| r.is_official == o)
            && self.is_automated.is_none_or(|a| r.is_automated == a)
    }
}

/// What to search: `term` among the repositories of `registry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    pub registry: String,
    pub term: String,
    pub limit: usize,
    pub filters: SearchFilters,
}

impl SearchQuery {
    /// Docker's `HOST/term` (a first component with a `.` or `:`, or
    /// `localhost`), else `registry` (`--registry`), else the default
    /// registry; with none, an error that says how to name one. `limit`
    /// is checked as dockerd checks it.
    pub fn new(
        term: &str,
        registry: Option<&str>,
        default_registry: Option<&str>,
        limit: usize,
        filters: SearchFilters,
    ) -> Result<SearchQuery> {
        let fail = |message: String| RegistryError::Search { message };
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(fail(format!(
                "Limit {limit} is outside the range of [1, {MAX_LIMIT}]"
            )));
        }
        let named = term
            .split_once('/')
            .filter(|(host, _)| is_registry_host(host));
        let (registry, term) = match (named, registry) {
            (Some((host, _)), Some(flag)) if host != flag => {
                return Err(fail(format!(
                    "the term names registry {host} and --registry names {flag}: name one"
                )));
            }
            (Some((host, rest)), _) => (host.to_owned(), rest.to_owned()),
            (None, Some(flag)) => {
                if !is_registry_host(flag) {
                    return Err(fail(format!(
                        "{flag:?} is not a registry HOST[:PORT] (a name with a '.' or a ':', or localhost)"
                    )));
                }
                (flag.to_owned(), term.to_owned())
            }
            (None, None) => match default_registry {
                Some(d) => (d.to_owned(), term.to_owned()),
                None => {
                    return Err(fail(format!(
                        "search {term:?} names no registry: search HOST[:PORT]/{term}, pass --registry HOST[:PORT], or set default-registry in wrun's config.json"
                    )));
                }
            },
        };
        Ok(SearchQuery {
            registry,
            term,
            limit,
            filters,
        })
    }
}

/// One repository found, with dockerd's JSON keys.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SearchResult {
    pub name: String,
    pub description: String,
    pub star_count: u64,
    pub is_official: bool,
    pub is_automated: bool,
}

/// Searches `query.registry`'s catalog for repositories whose path holds
/// `query.term` (ignoring case), in catalog order, at most `query.limit`;
/// each named `HOST/PATH` (what pull takes), its tags as its description.
/// `options.auth` is sent (Basic, or a Bearer token scoped
/// `registry:catalog:*`); a registry that refuses or lacks the catalog is
/// a one-line error. Blocking: it runs its own runtime.
pub fn search(options: &RegistryOptions, query: &SearchQuery) -> Result<Vec<SearchResult>> {
    let registry = query.registry.as_str();
    let scheme = if options.plain_http(registry) {
        "http"
    } else {
        "https"
    };
    let client = options
        .http_client(registry)
        .map_err(|e| RegistryError::Search {
            message: format!("making an HTTP client: {e}"),
        })?;
    let base = format!("{scheme}://{registry}");
    runtime()?.block_on(async {
        let repositories = catalog(&client, &options.auth, &base, registry).await?;
        let term = query.term.to_lowercase();
        let mut found = Vec::new();
        for name in repositories {
            if found.len() == query.limit {
                break;
            }
            if !name.to_lowercase().contains(&term) {
                continue;
            }
            let result = SearchResult {
                name: format!("{registry}/{name}"),
                description: String::new(),
                star_count: 0,
                is_official: false,
                is_automated: false,
            };
            if query.filters.admits(&result) {
                found.push(result);
            }
        }
        for r in &mut found {
            let path = &r.name[registry.len() + 1..];
            r.description = describe_tags(&client, &options.auth, &base, path).await;
        }
        Ok(found)
    })
}

fn authorize(req: reqwest::RequestBuilder, auth: &RegistryAuth) -> reqwest::RequestBuilder {
    match auth {
        RegistryAuth::Anonymous => req,
        RegistryAuth::Basic(user, password) => req.basic_auth(user, Some(password)),
        RegistryAuth::Bearer(token) => req.bearer_auth(token),
    }
}

/// The body of `res`, refused past [`MAX_BODY`] bytes.
async fn bounded_body(mut res: reqwest::Response, url: &str) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let chunk = res.chunk().await.map_err(|e| RegistryError::Search {
            message: format!("Get \"{url}\": {}", innermost(&e)),
        })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > MAX_BODY {
            return Err(RegistryError::Search {
                message: format!("Get \"{url}\": the answer is larger than {MAX_BODY} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
}

/// Every repository of the catalog, page after page.
async fn catalog(
    client: &reqwest::Client,
    auth: &RegistryAuth,
    base: &str,
    registry: &str,
) -> Result<Vec<String>> {
    let fail = |message: String| RegistryError::Search { message };
    let mut url = reqwest::Url::parse(&format!("{base}/v2/_catalog?n={PAGE}"))
        .map_err(|e| fail(format!("{registry} is no URL host: {e}")))?;
    let mut repositories = Vec::new();
    for _ in 0..MAX_PAGES {
        let res = authorize(client.get(url.clone()), auth)
            .send()
            .await
            .map_err(|e| fail(format!("Get \"{url}\": {}", innermost(&e))))?;
        let status = res.status();
        let next = res
            .headers()
            .get(LINK)
            .and_then(|h| h.to_str().ok())
            .and_then(next_link);
        let body = bounded_body(res, url.as_str()).await?;
        if !status.is_success() {
            return Err(refusal(registry, status, &body, auth));
        }
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let page: Page = serde_json::from_slice(&body).map_err(|e| {
            fail(format!(
                "search {registry}: the catalog (GET /v2/_catalog) is not the registry API's JSON: {e}"
            ))
        })?;
        repositories.extend(page.repositories.unwrap_or_default());
        let Some(next) = next else {
            return Ok(repositories);
        };
        let next = url.join(&next).map_err(|e| {
            fail(format!(
                "search {registry}: the catalog's next page {next:?} is no URL: {e}"
            ))
        })?;
        // The credentials go with every page: only to the registry itself.
        if next.origin() != url.origin() {
            return Err(fail(format!(
                "search {registry}: the catalog's next page is on another host ({next}); wrun sends a registry's credentials only to that registry"
            )));
        }
        url = next;
    }
    Err(fail(format!(
        "search {registry}: the catalog has more than {MAX_PAGES} pages"
    )))
}

/// The target of a `Link: <URL>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

/// A registry's refusal of its catalog in one line, saying what to do.
fn refusal(registry: &str, status: StatusCode, body: &[u8], auth: &RegistryAuth) -> RegistryError {
    let words = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: String,
    }
    let said = serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| {
            e.errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty())
        .map(|s| format!(", {s}"))
        .unwrap_or_default();
    let message = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            if matches!(auth, RegistryAuth::Anonymous) =>
        {
            format!(
                "search {registry}: the registry lists its repositories only after a login (GET /v2/_catalog: {words}{said}): run wrun login {registry}"
            )
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
            "search {registry}: the registry refused to list its repositories to the stored credentials (GET /v2/_catalog: {words}{said})"
        ),
        _ => format!(
            "search {registry}: the registry offers no catalog to search (GET /v2/_catalog: {words}{said}); the distribution API has no search, and wrun searches a registry's catalog"
        ),
    };
    RegistryError::Search { message }
}

/// `tags: a, b` (sorted) from the repository's tag list; empty when the registry
/// does not say (a refusal, an error).
async fn describe_tags(
    client: &reqwest::Client,
    auth: &RegistryAuth,
    base: &str,
    path: &str,
) -> String {
    let url = format!("{base}/v2/{path}/tags/list");
    let Ok(res) = authorize(client.get(&url), auth).send().await else {
        return String::new();
    };
    if !res.status().is_success() {
        return String::new();
    }
    #[derive(serde::Deserialize)]
    struct Tags {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    match bounded_body(res, &url)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Tags>(&b).ok())
    {
        Some(Tags {
            tags: Some(mut tags),
        }) if !tags.is_empty() => {
            // The registry lists them in no set order.
            tags.sort();
            format!("tags: {}", tags.join(", "))
        }
        Some(_) => "no tags".to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;

    use super::*;

    fn pairs(items: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn filters_are_checked_in_dockerds_words() {
        let f = SearchFilters::from_pairs(&pairs(&[
            ("stars", &["3", "1"]),
            ("is-official", &["false"]),
        ]))
        .expect("filters");
        assert_eq!(
            (f.stars, f.is_official, f.is_automated),
            (Some(3), Some(false), None)
        );
        for (bad, words) in [
            (pairs(&[("foo", &["x"])]), "Invalid filter 'foo'"),
            (pairs(&[("stars", &["x"])]), "Invalid filter 'stars=x'"),
            (
                pairs(&[("is-official", &["maybe"])]),
                "Invalid filter 'is-official=[maybe]'",
            ),
        ] {
            let err = SearchFilters::from_pairs(&bad).unwrap_err().to_string();
            assert_eq!(err, words);
        }
    }

    #[test]
    fn the_term_names_the_registry_as_docker_splits_it() {
        let q = |t: &str, r: Option<&str>, d: Option<&str>| {
            SearchQuery::new(t, r, d, 25, SearchFilters::default())
        };
        let s = q("127.0.0.1:5000/team/he", None, None).expect("query");
        assert_eq!(
            (s.registry.as_str(), s.term.as_str()),
            ("127.0.0.1:5000", "team/he")
        );
        let s = q("team/he", Some("reg.lan"), None).expect("query");
        assert_eq!(
            (s.registry.as_str(), s.term.as_str()),
            ("reg.lan", "team/he")
        );
        let s = q("he", None, Some("reg.lan:1")).expect("query");
        assert_eq!(s.registry, "reg.lan:1");
        let err = q("he", None, None).unwrap_err().to_string();
        assert!(
            err.contains("--registry") && err.contains("default-registry"),
            "{err}"
        );
        assert!(q("a.b/x", Some("c.d"), None).is_err());
        assert!(q("x", Some("nohost"), None).is_err());
        for limit in [0, 101] {
            let err = SearchQuery::new("r.l/x", None, None, limit, SearchFilters::default())
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!("Limit {limit} is outside the range of [1, 100]")
            );
        }
    }

    #[test]
    fn next_links_are_read_as_distribution_writes_them() {
        assert_eq!(
            next_link("</v2/_catalog?last=b&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(next_link("</x>; rel=\"prev\""), None);
    }

    /// A catalog served in pages of two through `Link`, the last page's
    /// link pointing at `last_link` (none: the catalog ends).
    fn paged_catalog(last_link: Option<&'static str>) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let (body, link) = if first.contains("last=b") {
                    (
                        r#"{"repositories":["c/hello","d"]}"#,
                        last_link.map(str::to_owned),
                    )
                } else if first.starts_with("GET /v2/_catalog") {
                    (
                        r#"{"repositories":["a/hello","b"]}"#,
                        Some("</v2/_catalog?last=b&n=2>; rel=\"next\"".to_owned()),
                    )
                } else if first.starts_with("GET /v2/a/hello/tags/list") {
                    (r#"{"name":"a/hello","tags":["1.0","latest"]}"#, None)
                } else if first.starts_with("GET /quit") {
                    break;
                } else {
                    (
                        r#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#,
                        None,
                    )
                };
                let status = if body.contains("errors") {
                    "404 Not Found"
                } else {
                    "200 OK"
                };
                let link = link.map(|l| format!("Link: {l}\r\n")).unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (host, handle)
    }

    fn stop(host: &str, handle: std::thread::JoinHandle<()>) {
        if let Ok(mut s) = std::net::TcpStream::connect(host) {
            let _ = s.write_all(b"GET /quit HTTP/1.1\r\n\r\n");
        }
        handle.join().expect("server");
    }

    #[test]
    fn the_catalog_is_followed_page_by_page_and_filtered() {
        let (host, server) = paged_catalog(None);
        let query = SearchQuery::new(
            &format!("{host}/HELLO"),
            None,
            None,
            25,
            SearchFilters::default(),
        )
        .expect("query");
        let found = search(&RegistryOptions::default(), &query).expect("search");
        let names: Vec<_> = found.iter().map(|r| r.name.clone()).collect();
        assert_eq!(
            names,
            [format!("{host}/a/hello"), format!("{host}/c/hello")]
        );
        assert_eq!(found[0].description, "tags: 1.0, latest");
        assert_eq!(found[1].description, "");
        // is-official=true: no repository of a registry is official.
        let official = SearchQuery {
            filters: SearchFilters {
                is_official: Some(true),
                ..SearchFilters::default()
            },
            ..query
        };
        assert!(
            search(&RegistryOptions::default(), &official)
                .expect("search")
                .is_empty()
        );
        stop(&host, server);
    }

    #[test]
    fn a_next_page_on_another_host_is_not_followed() {
        let (host, server) = paged_catalog(Some(
            "<http://127.0.0.2:9/v2/_catalog?last=d>; rel=\"next\"",
        ));
        let query = SearchQuery::new(
            &format!("{host}/"),
            None,
            None,
            25,
            SearchFilters::default(),
        )
        .expect("query");
        let err = search(&RegistryOptions::default(), &query)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another host"), "{err}");
        stop(&host, server);
    }
}

//! `wrun search [--registry HOST] TERM`: the repositories of a registry
//! whose path holds TERM (its catalog, filtered), in docker search's columns.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use hyper::Method;
use wrun_api::registry::AuthConfig;
use wrun_image::registry::{self, Access, SearchFilters, SearchQuery, SearchResult};

use super::login::{RegistryFlags, registry_config, registry_options, stored_credentials};
use crate::output::{RowFormat, TEMPLATE_ERRORS, go_json, print_table};

/// docker search's template fields and titles.
const SEARCH_HEADERS: [(&str, &str); 4] = [
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
];

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided: stars=N,
    /// is-official=BOOL, is-automated=BOOL
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Output format: "table" (default), "json" (one object per line),
    /// "table TEMPLATE" or a Go template: {{.Name}} {{.Description}}
    /// {{.StarCount}} {{.IsOfficial}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Max number of search results
    #[arg(long, default_value_t = 25, allow_negative_numbers = true)]
    pub limit: i64,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// The registry to search, HOST[:PORT] [default: TERM's HOST/, else
    /// default-registry in wrun's config.json]
    #[arg(long, value_name = "HOST[:PORT]")]
    pub registry: Option<String>,
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
    /// What the repository paths hold; HOST[:PORT]/TERM names the registry
    #[arg(value_name = "TERM")]
    pub term: String,
}

pub fn run(target: Option<&super::DaemonTarget>, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let filters_json = super::filters_json(&args.filter)?;
    let format = RowFormat::parse(args.format.as_deref(), &TEMPLATE_ERRORS)?;
    let results = match target {
        Some(target) => through_daemon(target, &args, &filters_json)?,
        None => here(&args, &filters_json)?,
    };
    print(&results, &format, args.no_trunc)?;
    Ok(ExitCode::SUCCESS)
}

/// dockerd's bound of `limit`, in its words.
fn limit(limit: i64) -> anyhow::Result<usize> {
    match usize::try_from(limit) {
        Ok(n) if (1..=registry::MAX_LIMIT).contains(&n) => Ok(n),
        _ => bail!(
            "Limit {limit} is outside the range of [1, {}]",
            registry::MAX_LIMIT
        ),
    }
}

/// The search in this process: the registry's catalog, with the
/// credentials stored for it.
fn here(args: &SearchArgs, filters_json: &str) -> anyhow::Result<Vec<SearchResult>> {
    let config = registry_config()?;
    let query = SearchQuery::new(
        &args.term,
        args.registry.as_deref(),
        config.default_registry.as_deref(),
        limit(args.limit)?,
        SearchFilters::from_pairs(
            &wrun_api::parse::Filters::from_json(filters_json)
                .map_err(anyhow::Error::msg)?
                .to_map(),
        )?,
    )?;
    let mut options = registry_options(&query.registry, &args.registry_flags)?;
    let credentials = stored_credentials(&query.registry)?;
    options.auth = registry::registry_auth(
        &options,
        &query.registry,
        "",
        credentials.as_ref(),
        Access::Catalog,
    )?;
    Ok(registry::search(&options, &query)?)
}

/// `GET /images/search` of the daemon named with `-H`, with the
/// credentials stored for the registry named (`X-Registry-Auth`): the
/// daemon's registry configuration applies, not this process's.
fn through_daemon(
    target: &super::DaemonTarget,
    args: &SearchArgs,
    filters_json: &str,
) -> anyhow::Result<Vec<SearchResult>> {
    super::login::refuse_insecure_through_daemon(&args.registry_flags)?;
    limit(args.limit)?;
    // The registry when the command names one (else the daemon's
    // default-registry, whose credentials this process cannot know).
    let named = SearchQuery::new(
        &args.term,
        args.registry.as_deref(),
        None,
        1,
        SearchFilters::default(),
    );
    let term = match (&args.registry, &named) {
        // The daemon takes docker's HOST/TERM.
        (Some(_), Ok(q)) => format!("{}/{}", q.registry, q.term),
        (Some(_), Err(e)) => bail!("{e}"),
        (None, _) => args.term.clone(),
    };
    let auth = match &named {
        Ok(q) => stored_credentials(&q.registry)?.map(|c| {
            AuthConfig {
                username: c.username,
                password: c.password,
                serveraddress: q.registry.clone(),
                ..AuthConfig::default()
            }
            .to_header()
        }),
        Err(_) => None,
    };
    let mut path = format!(
        "/images/search?term={}&limit={}",
        super::escape(&term),
        args.limit
    );
    if filters_json != "{}" {
        path.push_str(&format!("&filters={}", super::escape(filters_json)));
    }
    let headers: Vec<(&'static str, &str)> = auth
        .as_deref()
        .map(|a| ("X-Registry-Auth", a))
        .into_iter()
        .collect();
    let mut body = Vec::new();
    target
        .client()?
        .stream_with_request_headers(Method::GET, &path, &headers, |chunk| {
            body.extend_from_slice(chunk);
            Ok(())
        })?;
    serde_json::from_slice(&body).context("the daemon's answer is not the expected JSON")
}

fn print(results: &[SearchResult], format: &RowFormat, no_trunc: bool) -> anyhow::Result<()> {
    let description = |r: &SearchResult| {
        let d = r.description.replace(['\n', '\r'], " ");
        if no_trunc { d } else { ellipsis(&d, 45) }
    };
    match format {
        RowFormat::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        description(r),
                        r.star_count.to_string(),
                        if r.is_official { "[OK]" } else { "" }.to_owned(),
                    ]
                })
                .collect();
            print_table(&SEARCH_HEADERS.map(|(_, title)| title), &rows)?;
        }
        _ => {
            // docker's template values: strings, booleans as [OK] or empty
            // (JSON: "true"/"false").
            let json = matches!(format, RowFormat::Json);
            let rows: Vec<serde_json::Value> = results
                .iter()
                .map(|r| {
                    let official = match (r.is_official, json) {
                        (true, true) => "true",
                        (true, false) => "[OK]",
                        (false, true) => "false",
                        (false, false) => "",
                    };
                    let mut map = BTreeMap::new();
                    map.insert("Name", r.name.clone());
                    map.insert("Description", description(r));
                    map.insert("StarCount", r.star_count.to_string());
                    map.insert("IsOfficial", official.to_owned());
                    serde_json::json!(map)
                })
                .collect();
            if json {
                for row in &rows {
                    println!("{}", go_json(row)?);
                }
            } else {
                format.print_rows(&rows, &SEARCH_HEADERS, &TEMPLATE_ERRORS)?;
            }
        }
    }
    Ok(())
}

/// docker's `Ellipsis`: at most `width` characters, the last one `…` when
/// cut.
fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_descriptions_are_cut_as_docker_cuts_them() {
        assert_eq!(super::ellipsis("short", 45), "short");
        let long = "x".repeat(50);
        let cut = super::ellipsis(&long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…'));
    }
}

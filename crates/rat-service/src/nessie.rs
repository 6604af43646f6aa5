//! The reaper's client of Nessie's REST API v2: list the branches, delete
//! one at the hash it was listed with. Only what orphan-branch cleanup needs.
//!
//! - `GET {base}/api/v2/trees?maxRecords=&pageToken=` answers
//!   `{references: [{type, name, hash}], hasMore, token}`;
//! - `DELETE {base}/api/v2/trees/{name}@{hash}` deletes the branch if it is
//!   still at `hash`: 409 (`REFERENCE_CONFLICT`) when it moved since, 404
//!   when it is gone.
//!
//! `base` is `RAT_NESSIE_URL` without its `/api/v2` (a trailing `/api/v2`
//! or `/api/v1` in the setting is taken off).

use std::time::Duration;

use serde::Deserialize;

/// How long one request to Nessie may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// References asked for per page.
const PAGE_SIZE: usize = 500;
/// Most references one listing collects (an unbounded listing is a bug).
pub const MAX_REFERENCES: usize = 100_000;

/// Why talking to Nessie failed: it is down, or answered what we do not expect.
#[derive(Debug, thiserror::Error)]
#[error("nessie {operation} failed: {reason}")]
pub struct NessieError {
    /// What was attempted.
    pub operation: &'static str,
    /// Why (no credentials or bodies in it).
    pub reason: String,
}

/// One reference of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Reference {
    /// `BRANCH` or `TAG`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The commit it points at.
    pub hash: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReferencesPage {
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default, rename = "hasMore")]
    has_more: bool,
    #[serde(default)]
    token: Option<String>,
}

/// What came of deleting a branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted.
    Yes,
    /// It moved since it was listed (409): someone writes to it; left alone.
    Moved,
    /// It was already gone (404).
    Gone,
}

/// A Nessie server's REST API v2.
#[derive(Debug, Clone)]
pub struct NessieClient {
    base: String,
    http: reqwest::Client,
}

impl NessieClient {
    /// A client of the server at `url` (`RAT_NESSIE_URL`).
    pub fn new(url: &str) -> Result<Self, NessieError> {
        let trimmed = url.trim().trim_end_matches('/');
        let base = trimmed
            .strip_suffix("/api/v2")
            .or_else(|| trimmed.strip_suffix("/api/v1"))
            .unwrap_or(trimmed)
            .to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(NessieError {
                operation: "configuration",
                reason: "RAT_NESSIE_URL must be an http:// or https:// URL".to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| NessieError {
                operation: "configuration",
                reason: e.to_string(),
            })?;
        Ok(NessieClient { base, http })
    }

    /// Every reference, following pages, at most [`MAX_REFERENCES`].
    pub async fn references(&self) -> Result<Vec<Reference>, NessieError> {
        let failed = |reason: String| NessieError {
            operation: "listing references",
            reason,
        };
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .http
                .get(format!("{}/api/v2/trees", self.base))
                .query(&[("maxRecords", PAGE_SIZE.to_string())]);
            if let Some(token) = &token {
                request = request.query(&[("pageToken", token)]);
            }
            let response = request.send().await.map_err(|e| failed(without_url(e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(failed(format!("answered {status}")));
            }
            let page: ReferencesPage = response
                .json()
                .await
                .map_err(|e| failed(format!("unreadable answer: {}", without_url(e))))?;
            all.extend(page.references);
            if all.len() > MAX_REFERENCES {
                return Err(failed(format!("more than {MAX_REFERENCES} references")));
            }
            match (page.has_more, page.token) {
                (true, Some(next)) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                (true, _) => return Err(failed("hasMore without a new page token".to_owned())),
                (false, _) => return Ok(all),
            }
        }
    }

    /// Deletes branch `name` if it is still at `hash`.
    pub async fn delete_branch(&self, name: &str, hash: &str) -> Result<Deleted, NessieError> {
        let failed = |reason: String| NessieError {
            operation: "deleting a branch",
            reason,
        };
        // Reference names in a v2 path: `/` is written `~`; `@` separates the hash.
        let reference = format!("{}@{}", name.replace('/', "~"), hash);
        let url = reqwest::Url::parse(&format!("{}/api/v2/trees/", self.base))
            .and_then(|base| base.join(&utf8_path_segment(&reference)))
            .map_err(|e| failed(e.to_string()))?;
        let response = self.http.delete(url).send().await.map_err(|e| failed(without_url(e)))?;
        match response.status().as_u16() {
            200..=299 => Ok(Deleted::Yes),
            409 => Ok(Deleted::Moved),
            404 => Ok(Deleted::Gone),
            other => Err(failed(format!("answered {other}"))),
        }
    }
}

/// `segment` percent-encoded for one path segment.
fn utf8_path_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A reqwest error's text without the URL (which may carry credentials).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_drops_the_api_suffix_and_needs_http() {
        for url in [
            "http://nessie:19120",
            "http://nessie:19120/",
            "http://nessie:19120/api/v2",
            "http://nessie:19120/api/v1/",
        ] {
            assert_eq!(NessieClient::new(url).unwrap().base, "http://nessie:19120", "{url}");
        }
        assert!(NessieClient::new("nessie:19120").is_err());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(utf8_path_segment("run-1@abc"), "run-1@abc");
        assert_eq!(utf8_path_segment("a b/c"), "a%20b%2Fc");
    }
}

//! Requests refused before they did anything (no or a wrong credential, a
//! foreign `Origin` or `Host`, a webhook caller over its rate): counted, and
//! summed into one audit row per kind and interval, never one row each. A
//! flood of refused requests then costs no database work at all, and the
//! audit log still says that it happened, how often, and from where.
//!
//! Memory is bounded: each kind remembers at most [`MAX_CLIENTS`] client
//! addresses per interval; the rest are counted together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use rat_service::audit::NewAuditEntry;
use serde_json::json;
use time::OffsetDateTime;

/// Client addresses remembered per kind of refusal and interval.
pub const MAX_CLIENTS: usize = 64;

/// Why a request was refused: the audit action of its summary row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No valid API key (or runner token, or metrics token): 401.
    Unauthenticated,
    /// A state-changing request from an `Origin` that is not allowed: 403.
    ForeignOrigin,
    /// A `Host` this server does not serve: 403.
    ForeignHost,
    /// A webhook caller over its rate limit: 429.
    WebhookRateLimited,
}

impl Refusal {
    /// The audit action of the summary row (and the metric's `reason`).
    pub fn action(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "request.unauthenticated",
            Refusal::ForeignOrigin => "request.foreign_origin",
            Refusal::ForeignHost => "request.foreign_host",
            Refusal::WebhookRateLimited => "webhook.rate_limited",
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    total: u64,
    by_client: HashMap<Option<IpAddr>, u64>,
    other_clients: u64,
}

#[derive(Debug, Default)]
struct Window {
    since: Option<OffsetDateTime>,
    tallies: HashMap<Refusal, Tally>,
}

/// The refusals of one process since the last [`Refusals::take`].
#[derive(Debug, Default)]
pub struct Refusals {
    window: Mutex<Window>,
}

impl Refusals {
    /// Counts one refusal of `client`.
    pub fn record(&self, refusal: Refusal, client: Option<IpAddr>) {
        metrics::counter!("rat_refused_requests_total", "reason" => refusal.action()).increment(1);
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.since.get_or_insert_with(OffsetDateTime::now_utc);
        let tally = window.tallies.entry(refusal).or_default();
        tally.total += 1;
        if let Some(count) = tally.by_client.get_mut(&client) {
            *count += 1;
        } else if tally.by_client.len() < MAX_CLIENTS {
            tally.by_client.insert(client, 1);
        } else {
            tally.other_clients += 1;
        }
    }

    /// The summary rows of everything counted since the last call (one per
    /// kind, busiest clients first), and a fresh start.
    pub fn take(&self, now: OffsetDateTime) -> Vec<NewAuditEntry> {
        let window = std::mem::take(&mut *self.window.lock().unwrap_or_else(PoisonError::into_inner));
        let since = window.since.unwrap_or(now);
        let mut entries: Vec<NewAuditEntry> = window
            .tallies
            .into_iter()
            .map(|(refusal, tally)| {
                let mut clients: Vec<(Option<IpAddr>, u64)> = tally.by_client.into_iter().collect();
                clients.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let clients: Vec<_> = clients
                    .into_iter()
                    .map(|(ip, count)| json!({ "client_ip": ip.map(|ip| ip.to_string()), "count": count }))
                    .collect();
                NewAuditEntry {
                    actor: "unauthenticated".to_owned(),
                    action: refusal.action().to_owned(),
                    object_type: None,
                    object_id: None,
                    details: Some(json!({
                        "count": tally.total,
                        "since": since.format(&time::format_description::well_known::Rfc3339).ok(),
                        "until": now.format(&time::format_description::well_known::Rfc3339).ok(),
                        "clients": clients,
                        "other_clients_count": tally.other_clients,
                    })),
                }
            })
            .collect();
        entries.sort_by(|a, b| a.action.cmp(&b.action));
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_summed_per_kind_with_bounded_clients() {
        let refusals = Refusals::default();
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            refusals.record(Refusal::Unauthenticated, Some(ip));
        }
        for _ in 0..5 {
            refusals.record(Refusal::WebhookRateLimited, None);
        }
        let entries = refusals.take(OffsetDateTime::now_utc());
        assert_eq!(entries.len(), 2);
        let unauthenticated = entries.iter().find(|e| e.action == "request.unauthenticated").unwrap();
        let details = unauthenticated.details.as_ref().unwrap();
        assert_eq!(details["count"], MAX_CLIENTS as u64 + 10);
        assert_eq!(details["clients"].as_array().unwrap().len(), MAX_CLIENTS);
        assert_eq!(details["other_clients_count"], 10);
        let limited = entries.iter().find(|e| e.action == "webhook.rate_limited").unwrap();
        assert_eq!(limited.details.as_ref().unwrap()["count"], 5);
        assert!(
            refusals.take(OffsetDateTime::now_utc()).is_empty(),
            "taking starts afresh"
        );
    }
}

//! `audit_log`: the trail of state-changing requests.

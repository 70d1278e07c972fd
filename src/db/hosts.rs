//! Several database hosts, one primary: a multi-host `database.url` (as
//! libpq writes it) and the task that keeps the pool pointed at whichever
//! host is the writable primary.
//!
//! A URL names its hosts either in the authority
//! (`postgres://u@db1:5432,db2:5432/orderd`) or in the `host` parameter
//! (`postgres://u@localhost/orderd?host=/run/a,/run/b&port=5432,5433`, the
//! form for unix sockets). Each host becomes one candidate; libpq's
//! `target_session_attrs` is accepted and implied: orderd only ever writes
//! to a primary.
//!
//! Following: [`follow_primary`] checks the current host on a connection of
//! its own every `database.primary_check_ms`. When the host is gone or has
//! become a standby (`pg_is_in_recovery()`), it asks every candidate and
//! points the pool at the one that is a primary (`Pool::set_connect_options`:
//! new connections go there). Pooled connections to the old host fail their
//! next use, or are discarded by the acquire guard, which refuses a
//! connection to a server in recovery. Requests that fail in between are
//! answered 503 with `Retry-After`; work in flight is an unknown outcome the
//! lifecycle resolves as after any lost connection.
//!
//! What this does not do: decide that a primary is dead, promote a standby,
//! or fence an old primary that comes back. That is the HA manager's job
//! (Patroni, pg_auto_failover, or `orderd chaos --failover`'s script); two
//! writable primaries at once would be split brain whichever client follows
//! them.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::watch;

use crate::metrics::names;

/// How long one candidate may take to connect and answer.
pub const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// The single-host URLs a (possibly multi-host) `url` stands for, in order.
pub fn candidate_urls(url: &str) -> Result<Vec<String>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "a database URL starts with postgres://".to_string())?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostlist) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (Some(user), hosts),
        None => (None, authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut params: Vec<(String, String)> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    if let Some((_, attrs)) = params.iter().find(|(k, _)| k == "target_session_attrs")
        && !matches!(attrs.as_str(), "read-write" | "primary" | "any")
    {
        return Err(format!(
            "target_session_attrs={attrs}: orderd writes, so only read-write (or primary) makes sense"
        ));
    }
    params.retain(|(k, _)| k != "target_session_attrs");
    let param_hosts: Vec<String> = params
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let param_ports: Vec<String> = params
        .iter()
        .find(|(k, _)| k == "port")
        .map(|(_, v)| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let authority_hosts = split_authority_hosts(hostlist)?;
    let prefix = |hosts: &str| match userinfo {
        Some(user) => format!("{scheme}://{user}@{hosts}{path}"),
        None => format!("{scheme}://{hosts}{path}"),
    };
    let render = |base: String, params: &[(String, String)]| {
        if params.is_empty() {
            base
        } else {
            let query: Vec<String> = params
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.clone()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
    };
    if param_hosts.len() > 1 && authority_hosts.len() > 1 {
        return Err("hosts are listed both in the authority and in host=; list them once".into());
    }
    if param_ports.len() > 1 && param_ports.len() != param_hosts.len().max(1) {
        return Err(format!(
            "{} ports for {} hosts: give one port, or one per host",
            param_ports.len(),
            param_hosts.len().max(1)
        ));
    }
    if param_hosts.len() > 1 {
        return Ok(param_hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let mut own = params.clone();
                for (k, v) in own.iter_mut() {
                    if k == "host" {
                        *v = host.clone();
                    } else if k == "port" && param_ports.len() > 1 {
                        *v = param_ports[i].clone();
                    }
                }
                render(prefix(hostlist), &own)
            })
            .collect());
    }
    Ok(authority_hosts
        .iter()
        .map(|host| render(prefix(host), &params))
        .collect())
}

/// `db1:5432,db2,[::1]:5433` → each `host[:port]`; empty → one empty host.
fn split_authority_hosts(list: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    let mut rest = list;
    loop {
        let end = if rest.starts_with('[') {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("an unclosed [ in the hosts {list:?}"))?;
            rest[close..].find(',').map(|i| close + i)
        } else {
            rest.find(',')
        };
        match end {
            Some(end) => {
                hosts.push(rest[..end].to_string());
                rest = &rest[end + 1..];
            }
            None => {
                hosts.push(rest.to_string());
                break;
            }
        }
    }
    if hosts.len() > 1 && hosts.iter().any(String::is_empty) {
        return Err(format!("an empty host in {list:?}"));
    }
    Ok(hosts)
}

/// The connect options of each candidate of `url`.
pub fn candidates(url: &str) -> Result<Vec<PgConnectOptions>, String> {
    candidate_urls(url)?
        .iter()
        .map(|one| PgConnectOptions::from_str(one).map_err(|e| format!("{one}: {e}")))
        .collect()
}

/// What a candidate is, as far as orderd is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Standby,
    Unreachable,
}

/// Connects to `options` and asks whether it is in recovery.
pub async fn probe(options: &PgConnectOptions) -> Role {
    let Ok(Ok(mut conn)) = tokio::time::timeout(PROBE_LIMIT, options.connect()).await else {
        return Role::Unreachable;
    };
    let role = role_of(&mut conn).await;
    let _ = conn.close().await;
    role
}

/// What the server behind `conn` is, asked within [`PROBE_LIMIT`].
async fn role_of(conn: &mut PgConnection) -> Role {
    let asked = tokio::time::timeout(
        PROBE_LIMIT,
        sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&mut *conn),
    )
    .await;
    match asked {
        Ok(Ok(false)) => Role::Primary,
        Ok(Ok(true)) => Role::Standby,
        _ => Role::Unreachable,
    }
}

/// The index of the first candidate that is a primary, asking all at once.
pub async fn find_primary(candidates: &[PgConnectOptions]) -> Option<usize> {
    let mut asking = tokio::task::JoinSet::new();
    for (i, options) in candidates.iter().enumerate() {
        let options = options.clone();
        asking.spawn(async move { (i, probe(&options).await) });
    }
    let mut primaries = Vec::new();
    while let Some(answer) = asking.join_next().await {
        if let Ok((i, Role::Primary)) = answer {
            primaries.push(i);
        }
    }
    // Two primaries at once is split brain (an old primary back without
    // being fenced): the lowest-listed wins, and it is said loudly.
    if primaries.len() > 1 {
        tracing::error!(?primaries, "several database hosts claim to be the primary");
    }
    primaries.into_iter().min()
}

/// Keeps `pool` pointed at the primary among `candidates` (the pool starts
/// on `current`) until `shutdown`. `decorate` turns a candidate into the
/// pool's options (timeouts, application name).
pub async fn follow_primary(
    pool: PgPool,
    candidates: Vec<PgConnectOptions>,
    mut current: usize,
    decorate: impl Fn(PgConnectOptions) -> PgConnectOptions + Send,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn: Option<PgConnection> = None;
    metrics::gauge!(names::DB_PRIMARY_HOST).set(current as f64);
    loop {
        tokio::select! {
            // The next check, or the stop.
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if conn.is_none() {
            conn = tokio::time::timeout(PROBE_LIMIT, candidates[current].connect())
                .await
                .ok()
                .and_then(Result::ok);
        }
        let role = match conn.as_mut() {
            Some(c) => role_of(c).await,
            None => Role::Unreachable,
        };
        if role == Role::Primary {
            continue;
        }
        conn = None;
        match find_primary(&candidates).await {
            Some(found) if found != current => {
                tracing::warn!(
                    from = current,
                    to = found,
                    was = ?role,
                    "the database primary moved; new connections go to the new primary"
                );
                pool.set_connect_options(decorate(candidates[found].clone()));
                current = found;
                metrics::counter!(names::DB_PRIMARY_SWITCHES).increment(1);
                metrics::gauge!(names::DB_PRIMARY_HOST).set(current as f64);
            }
            Some(_) => {}
            None => {
                tracing::warn!(was = ?role, "no database host is a writable primary; asking again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::candidate_urls;

    #[test]
    fn a_single_host_url_is_itself() {
        let url = "postgres://u:p@db:5432/orderd?sslmode=disable";
        assert_eq!(candidate_urls(url).unwrap(), vec![url.to_string()]);
    }

    #[test]
    fn hosts_in_the_authority_become_one_url_each() {
        let urls = candidate_urls(
            "postgres://u@db1:5432,db2,[::1]:5433/orderd?target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(
            urls,
            vec![
                "postgres://u@db1:5432/orderd",
                "postgres://u@db2/orderd",
                "postgres://u@[::1]:5433/orderd"
            ]
        );
    }

    #[test]
    fn socket_hosts_in_the_host_parameter_get_their_ports() {
        let urls = candidate_urls(
            "postgres://postgres@localhost/orderd?host=/a/socket,/b/socket&port=5432,5433&sslmode=disable",
        )
        .unwrap();
        assert_eq!(
            urls,
            vec![
                "postgres://postgres@localhost/orderd?host=/a/socket&port=5432&sslmode=disable",
                "postgres://postgres@localhost/orderd?host=/b/socket&port=5433&sslmode=disable"
            ]
        );
        let one_port =
            candidate_urls("postgres://postgres@localhost/orderd?host=/a,/b&port=5432").unwrap();
        assert_eq!(one_port.len(), 2);
        assert!(one_port[1].ends_with("host=/b&port=5432"));
    }

    #[test]
    fn contradictions_are_refused_with_a_reason() {
        for (url, says) in [
            ("postgres://u@a,b/db?host=/x,/y", "list them once"),
            (
                "postgres://u@localhost/db?host=/x,/y&port=1,2,3",
                "3 ports for 2 hosts",
            ),
            ("postgres://u@localhost/db?port=1,2", "2 ports for 1 hosts"),
            ("postgres://u@a,,b/db", "an empty host"),
            (
                "postgres://u@a,b/db?target_session_attrs=read-only",
                "only read-write",
            ),
            ("postgres://u@[::1,b/db", "unclosed ["),
            ("db1,db2", "starts with postgres://"),
        ] {
            let error = candidate_urls(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        }
    }
}

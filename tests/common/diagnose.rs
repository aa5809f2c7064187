//! Why a token is missing: what a test that finds tokens missing from
//! `get_tokens` or `find_token` puts in its assertion message, so that a
//! failure says whether the store lost an entry or the emulator hid one.
//!
//! For each missing id, [`diagnose_missing`] reads, past every cache:
//!
//! - the token's secret, exactly (`GetSecretValue`) and as a batch read
//!   (`BatchGetSecretValue`) would show it;
//! - the index tree twice: once with exact reads, once with batch reads
//!   (what `get_tokens` and cold lookups read), each following its own
//!   splits;
//! - every version Secrets Manager keeps of each node on the path the id's
//!   entry routes to (`ListSecretVersionIds`, then `GetSecretValue` by
//!   `VersionId`), to find a version that held the entry and the one that
//!   dropped it;
//! - the [`VersionLedger`], for nodes (or the token's secret) that got two
//!   successful `CreateSecret`s.
//!
//! and gives a [`Verdict`]. The index format read here is the store's
//! (`{prefix}/index/r…`, `{"s": seq, "x": [seq0, seq1], "e": [{"i": id,
//! "u": user}, …]}`), and the route is its hash (SHA-256 of `u\0<user>`,
//! else of `i\0<id>`, first 8 bytes): it reads what is stored, not what the
//! store under test believes.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use sha2::{Digest, Sha256};

use super::{VersionLedger, index_root, token_secret};

/// What became of one missing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exact and batch reads both list it now: the miss was a read that
    /// raced a write (or a cached index), nothing is lost.
    Listed,
    /// Its entry is in the index (exact reads find it), but a batch read of
    /// `node` answers another version than the `AWSCURRENT` label holds
    /// (LocalStack 4.13 after a stage move that failed half-way): batch
    /// readers miss it until the node is written again.
    Hidden {
        node: String,
        exact_version: String,
        batch_version: String,
    },
    /// In no current node, but version `version` of `node` held it;
    /// `dropped_by` is the next version kept, which does not.
    Lost {
        node: String,
        version: String,
        dropped_by: Option<String>,
    },
    /// In no current node and no version kept, and `node` on its path was
    /// created twice with no delete between (the version ledger): LocalStack's
    /// `CreateSecret` is not atomic, and the later create replaced the earlier.
    DoublyCreated { node: String },
    /// In no node and no version kept of the nodes on its path: the save
    /// never indexed it (or the versions that would tell were pruned).
    NeverIndexed,
    /// Indexed, but its token secret does not exist: the save that indexed
    /// it did not store it (or it was deleted).
    SecretMissing,
    /// Indexed and its secret exists, but a batch read of the secret omits it.
    SecretHidden,
}

/// The findings for one missing id.
#[derive(Debug, Clone)]
pub struct Finding {
    pub id: String,
    pub verdict: Verdict,
    /// What was read, for the message.
    pub details: Vec<String>,
}

/// The findings for every missing id, in id order.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    /// The verdict on `id`, if it was diagnosed.
    pub fn verdict(&self, id: &str) -> Option<&Verdict> {
        self.findings
            .iter()
            .find(|f| f.id == id)
            .map(|f| &f.verdict)
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.findings.is_empty() {
            return write!(f, "diagnosis: no token missing");
        }
        let ids: Vec<&str> = self.findings.iter().map(|f| f.id.as_str()).collect();
        writeln!(f, "diagnosis of {} missing token(s): {ids:?}", ids.len())?;
        for finding in &self.findings {
            writeln!(f, "- {}: {}", finding.id, finding.verdict)?;
            for line in &finding.details {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listed => write!(
                f,
                "LISTED now by exact and batch reads: a read that raced a write, nothing lost"
            ),
            Self::Hidden {
                node,
                exact_version,
                batch_version,
            } => write!(
                f,
                "HIDDEN: indexed in {node} (AWSCURRENT {exact_version}), but BatchGetSecretValue \
                 answers version {batch_version} (the emulator's batch read lags the label)"
            ),
            Self::Lost {
                node,
                version,
                dropped_by,
            } => write!(
                f,
                "LOST: version {version} of {node} held the entry, {} (a store bug, unless \
                 the token was deleted meanwhile)",
                dropped_by.as_ref().map_or_else(
                    || "no version kept has it now".to_owned(),
                    |v| format!("version {v} dropped it")
                )
            ),
            Self::DoublyCreated { node } => write!(
                f,
                "DOUBLY CREATED: {node} got two successful CreateSecret calls (version ledger); \
                 LocalStack's create is not atomic and the later one replaced the entry"
            ),
            Self::NeverIndexed => write!(
                f,
                "NEVER INDEXED: in no version kept of the index nodes on its path"
            ),
            Self::SecretMissing => write!(
                f,
                "SECRET MISSING: indexed, but its token secret does not exist"
            ),
            Self::SecretHidden => write!(
                f,
                "SECRET HIDDEN: indexed and stored, but BatchGetSecretValue omits its secret"
            ),
        }
    }
}

/// [`diagnose_missing`] as the text for an assertion message (empty work
/// and a one-line text when nothing is missing).
pub async fn explain_missing(
    client: &Client,
    prefix: &str,
    missing: impl IntoIterator<Item = (String, Option<String>)>,
    ledger: Option<&VersionLedger>,
) -> String {
    diagnose_missing(client, prefix, missing, ledger)
        .await
        .to_string()
}

/// The ids of `expected` (id, user name if known) that `listed` lacks, for
/// [`explain_missing`].
pub fn missing_from<'a>(
    expected: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    listed: &BTreeSet<String>,
) -> Vec<(String, Option<String>)> {
    expected
        .into_iter()
        .filter(|(id, _)| !listed.contains(*id))
        .map(|(id, user)| (id.to_owned(), user.map(str::to_owned)))
        .collect()
}

/// Diagnoses each of `missing` (token id, and its user name when the caller
/// knows it: else the secret's, else routed by id) on the store at
/// `prefix`, reading through `client`. Reads only; never panics on what it
/// reads (an unreadable thing is reported in the details).
pub async fn diagnose_missing(
    client: &Client,
    prefix: &str,
    missing: impl IntoIterator<Item = (String, Option<String>)>,
    ledger: Option<&VersionLedger>,
) -> Diagnosis {
    let missing: BTreeMap<String, Option<String>> = missing.into_iter().collect();
    if missing.is_empty() {
        return Diagnosis::default();
    }
    let mut reader = Reader {
        client,
        prefix,
        versions: BTreeMap::new(),
    };
    let exact = reader.tree(false).await;
    let batch = reader.tree(true).await;
    let mut findings = Vec::new();
    for (id, user) in missing {
        findings.push(reader.finding(&id, user, &exact, &batch, ledger).await);
    }
    Diagnosis { findings }
}

/// One node as read: its version and body.
#[derive(Debug, Clone)]
struct NodeRead {
    version: String,
    body: serde_json::Value,
}

impl NodeRead {
    fn split(&self) -> bool {
        self.body.get("x").is_some_and(|x| !x.is_null())
    }

    fn holds(&self, id: &str) -> bool {
        self.body
            .get("e")
            .and_then(|e| e.as_array())
            .is_some_and(|entries| entries.iter().any(|e| e["i"].as_str() == Some(id)))
    }

    fn seq(&self) -> u64 {
        self.body["s"].as_u64().unwrap_or(0)
    }
}

/// A tree as read one way: node suffix (`r`, `r0`, …) to what was read,
/// and what could not be read.
#[derive(Debug, Default)]
struct Tree {
    nodes: BTreeMap<String, NodeRead>,
    errors: Vec<String>,
}

impl Tree {
    /// The reachable leaves holding `id`.
    fn leaves_holding(&self, id: &str) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|(_, n)| !n.split() && n.holds(id))
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

struct Reader<'a> {
    client: &'a Client,
    prefix: &'a str,
    /// Kept versions of nodes already listed: (version id, created, body).
    versions: BTreeMap<String, Vec<(String, i64, Option<serde_json::Value>)>>,
}

impl Reader<'_> {
    fn node_name(&self, suffix: &str) -> String {
        format!("{}{}", index_root(self.prefix), &suffix[1..])
    }

    /// The whole reachable tree, by exact reads or by batch reads, level by level.
    async fn tree(&self, batch: bool) -> Tree {
        let mut tree = Tree::default();
        let mut level = vec!["r".to_owned()];
        while !level.is_empty() && level[0].len() <= 41 {
            let mut next = Vec::new();
            for chunk in level.chunks(20) {
                let read = if batch {
                    self.batch_nodes(chunk).await
                } else {
                    let mut read = BTreeMap::new();
                    for suffix in chunk {
                        match self.exact(&self.node_name(suffix), None).await {
                            Ok(Some(node)) => {
                                read.insert(suffix.clone(), node);
                            }
                            Ok(None) => {}
                            Err(e) => tree.errors.push(format!("exact read of {suffix}: {e}")),
                        }
                    }
                    Ok(read)
                };
                match read {
                    Ok(read) => {
                        for (suffix, node) in read {
                            if node.split() {
                                next.push(format!("{suffix}0"));
                                next.push(format!("{suffix}1"));
                            }
                            tree.nodes.insert(suffix, node);
                        }
                    }
                    Err(e) => tree.errors.push(format!("batch read: {e}")),
                }
            }
            level = next;
        }
        tree
    }

    async fn batch_nodes(&self, suffixes: &[String]) -> Result<BTreeMap<String, NodeRead>, String> {
        let names: Vec<String> = suffixes.iter().map(|s| self.node_name(s)).collect();
        let out = self
            .client
            .batch_get_secret_value()
            .set_secret_id_list(Some(names.clone()))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let mut read = BTreeMap::new();
        for value in out.secret_values() {
            let Some(at) = names.iter().position(|n| Some(n.as_str()) == value.name()) else {
                continue;
            };
            read.insert(
                suffixes[at].clone(),
                NodeRead {
                    version: value.version_id().unwrap_or("?").to_owned(),
                    body: parse(value.secret_string()),
                },
            );
        }
        Ok(read)
    }

    /// `GetSecretValue` of `name` (at `version`, else `AWSCURRENT`);
    /// `Ok(None)` when it does not exist.
    async fn exact(&self, name: &str, version: Option<&str>) -> Result<Option<NodeRead>, String> {
        match self
            .client
            .get_secret_value()
            .secret_id(name)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
        {
            Ok(out) => Ok(Some(NodeRead {
                version: out.version_id().unwrap_or("?").to_owned(),
                body: parse(out.secret_string()),
            })),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(describe(&e)),
        }
    }

    /// The versions Secrets Manager keeps of node `suffix`, oldest first.
    async fn kept_versions(
        &mut self,
        suffix: &str,
    ) -> Result<&[(String, i64, Option<serde_json::Value>)], String> {
        if !self.versions.contains_key(suffix) {
            let name = self.node_name(suffix);
            let mut ids = Vec::new();
            let mut next = None;
            loop {
                let out = self
                    .client
                    .list_secret_version_ids()
                    .secret_id(&name)
                    .include_deprecated(true)
                    .set_next_token(next)
                    .send()
                    .await;
                let out = match out {
                    Ok(out) => out,
                    Err(e) if e.code() == Some("ResourceNotFoundException") => break,
                    Err(e) => return Err(describe(&e)),
                };
                for v in out.versions() {
                    let created = v.created_date().map_or(0, |d| d.secs());
                    ids.push((v.version_id().unwrap_or("?").to_owned(), created));
                }
                next = out.next_token().map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
            let mut kept = Vec::new();
            for (version, created) in ids {
                let body = self
                    .exact(&name, Some(&version))
                    .await
                    .ok()
                    .flatten()
                    .map(|n| n.body);
                kept.push((version, created, body));
            }
            // Oldest first: by the node's write count, else by creation time.
            kept.sort_by_key(|(_, created, body)| {
                (
                    body.as_ref().and_then(|b| b["s"].as_u64()).unwrap_or(0),
                    *created,
                )
            });
            self.versions.insert(suffix.to_owned(), kept);
        }
        Ok(&self.versions[suffix])
    }

    async fn finding(
        &mut self,
        id: &str,
        user: Option<String>,
        exact: &Tree,
        batch: &Tree,
        ledger: Option<&VersionLedger>,
    ) -> Finding {
        let mut details = Vec::new();
        let secret = token_secret(self.prefix, id);
        let stored = self.exact(&secret, None).await;
        let stored_user = match &stored {
            Ok(Some(node)) => node.body["user_name"].as_str().map(str::to_owned),
            _ => None,
        };
        match &stored {
            Ok(Some(node)) => details.push(format!("token secret: version {}", node.version)),
            Ok(None) => details.push("token secret: does not exist".into()),
            Err(e) => details.push(format!("token secret: unreadable ({e})")),
        }
        let in_batch = match self
            .client
            .batch_get_secret_value()
            .secret_id_list(&secret)
            .send()
            .await
        {
            Ok(out) => out
                .secret_values()
                .iter()
                .any(|v| v.name() == Some(&secret)),
            Err(e) => {
                details.push(format!("token secret batch read failed: {}", describe(&e)));
                false
            }
        };
        if let Some(ledger) = ledger {
            let creates = ledger.creates(&secret);
            details.push(format!(
                "ledger: {} version(s), {creates} CreateSecret(s) of the token secret",
                ledger.versions(&secret)
            ));
            if ledger.created_twice(&secret) {
                details.push(
                    "the token secret was created twice with no delete between (LocalStack's \
                     non-atomic CreateSecret): the later create replaced the earlier value"
                        .into(),
                );
            }
        }
        // Else the user name its index entry has, if any exact read has one.
        let indexed_user = exact.nodes.values().find_map(|n| {
            n.body["e"].as_array()?.iter().find_map(|e| {
                (e["i"].as_str() == Some(id))
                    .then(|| e["u"].as_str().map(str::to_owned))
                    .flatten()
            })
        });
        let user = user.or(stored_user).or(indexed_user);
        let route = match &user {
            Some(user) => route_hash(b"u\0", user),
            None => route_hash(b"i\0", id),
        };
        let path = path_in(exact, route);
        details.push(format!(
            "routes ({}) to {}; exact path {:?}",
            user.as_deref()
                .map_or_else(|| "by id".to_owned(), |u| format!("user {u}")),
            path.last().map_or("?", String::as_str),
            path
        ));
        for e in exact.errors.iter().chain(&batch.errors) {
            details.push(format!("index read error: {e}"));
        }
        let exact_leaves = exact.leaves_holding(id);
        let batch_leaves = batch.leaves_holding(id);
        details.push(format!(
            "exact reads find it in {exact_leaves:?}, batch reads in {batch_leaves:?}"
        ));
        let verdict = if !exact_leaves.is_empty() {
            if batch_leaves.is_empty() {
                // The node whose batch version differs, on its exact path.
                let lagging = exact_leaves
                    .iter()
                    .map(|leaf| leaf.to_string())
                    .chain(path.iter().cloned())
                    .find(|suffix| {
                        let e = exact.nodes.get(suffix).map(|n| &n.version);
                        let b = batch.nodes.get(suffix).map(|n| &n.version);
                        e.is_some() && e != b
                    })
                    .unwrap_or_else(|| exact_leaves[0].to_owned());
                Verdict::Hidden {
                    node: self.node_name(&lagging),
                    exact_version: exact
                        .nodes
                        .get(&lagging)
                        .map_or("?".into(), |n| n.version.clone()),
                    batch_version: batch
                        .nodes
                        .get(&lagging)
                        .map_or("(none)".into(), |n| n.version.clone()),
                }
            } else if matches!(stored, Ok(None)) {
                Verdict::SecretMissing
            } else if !in_batch {
                Verdict::SecretHidden
            } else {
                Verdict::Listed
            }
        } else {
            let doubly = ledger.and_then(|ledger| {
                path.iter()
                    .map(|suffix| self.node_name(suffix))
                    .find(|name| ledger.created_twice(name))
            });
            let mut held = None;
            for suffix in &path {
                let kept = match self.kept_versions(suffix).await {
                    Ok(kept) => kept.to_vec(),
                    Err(e) => {
                        details.push(format!("versions of {suffix}: unreadable ({e})"));
                        continue;
                    }
                };
                let recorded = ledger.map_or_else(String::new, |l| {
                    format!(
                        " of {} the ledger recorded",
                        l.versions(&self.node_name(suffix))
                    )
                });
                let holding: Vec<&str> = kept
                    .iter()
                    .filter(|(_, _, body)| {
                        body.as_ref().is_some_and(|b| {
                            b.get("e")
                                .and_then(|e| e.as_array())
                                .is_some_and(|es| es.iter().any(|e| e["i"].as_str() == Some(id)))
                        })
                    })
                    .map(|(v, _, _)| v.as_str())
                    .collect();
                details.push(format!(
                    "{suffix}: {} version(s) kept{recorded}; holding it: {holding:?}",
                    kept.len()
                ));
                if let Some(&last) = holding.last()
                    && held.is_none()
                {
                    let at = kept.iter().position(|(v, _, _)| v == last).unwrap_or(0);
                    let dropped_by = kept.get(at + 1).map(|(v, _, _)| v.clone());
                    held = Some((self.node_name(suffix), last.to_owned(), dropped_by));
                }
            }
            match (doubly, held) {
                (Some(node), _) => Verdict::DoublyCreated { node },
                (None, Some((node, version, dropped_by))) => Verdict::Lost {
                    node,
                    version,
                    dropped_by,
                },
                (None, None) => Verdict::NeverIndexed,
            }
        };
        Finding {
            id: id.to_owned(),
            verdict,
            details,
        }
    }
}

/// The suffixes from the root to the leaf that covers `route` in `tree`
/// (down to the first node missing from it).
fn path_in(tree: &Tree, route: u64) -> Vec<String> {
    let mut path = vec!["r".to_owned()];
    loop {
        let last = path.last().unwrap();
        match tree.nodes.get(last) {
            Some(node) if node.split() && last.len() <= 40 => {
                let depth = last.len() - 1;
                let bit = (route >> (63 - depth)) & 1;
                path.push(format!("{last}{bit}"));
            }
            _ => return path,
        }
    }
}

/// The index's route hash: the first 8 bytes of SHA-256 of `kind` then `value`.
pub fn route_hash(kind: &[u8], value: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(kind)
        .chain_update(value.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The index leaf suffix (`r`, `r0`, `r01`, …) that user name `user`
/// routes to in a tree whose leaves are all `depth` deep.
pub fn leaf_of_user(user: &str, depth: usize) -> String {
    let route = route_hash(b"u\0", user);
    let mut suffix = "r".to_owned();
    for d in 0..depth {
        suffix.push(if (route >> (63 - d)) & 1 == 1 {
            '1'
        } else {
            '0'
        });
    }
    suffix
}

fn parse(value: Option<&str>) -> serde_json::Value {
    value
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// An SDK error's code and message, else its `Display` (never its `Debug`,
/// which can hold a response body).
fn describe<E: ProvideErrorMetadata + fmt::Display>(error: &E) -> String {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => error.to_string(),
    }
}

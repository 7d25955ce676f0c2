//! The daemon's table of user-defined networks and of the instances on
//! each, journaled in `networks/records.journal` as instance records are;
//! the `/networks` routes over it are in `networks.rs`.
//!
//! The table also answers the in-process network's questions
//! ([`wrun_runtime::PeerDirectory`]: which names and addresses an instance
//! sees), and hands each running instance its view of it ([`NetworkTable::attach`]),
//! so instances on a shared network reach each other (docs/networks.md).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use wrun_api::network::{
    BRIDGE_DRIVER, ConfigReference, EndpointSettings, Ipam, IpamConfig, Network, NetworkContainer,
    NetworkCreateRequest, NetworkCreateResponse, PREDEFINED, check_network_name,
};

use crate::error::DaemonError;
use crate::instance::Container;
use crate::records::{self, LiveRecords, RecordJournal};
use wrun_runtime::peer_net::{PeerAddr, Route};
use wrun_runtime::{InstancePeers, PeerDirectory, PeerNet};

/// The pools subnets are given from when a request names none, in order:
/// dockerd's default pools (172.17.0.0/16 to 172.31.0.0/16, then
/// 192.168.0.0/20 to 192.168.240.0/20), without 172.17.0.0/16, dockerd's
/// default bridge's. The addresses exist only inside wrun: no interface,
/// route or host socket is made for them, so they cannot clash with the
/// host's.
fn default_pools() -> impl Iterator<Item = Subnet> {
    let wide = (18..=31u8).map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let narrow = (0..16u8).map(|i| Subnet::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    wide.chain(narrow)
}

/// An IPv4 subnet: its first address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Subnet {
    base: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    fn new(base: Ipv4Addr, prefix: u8) -> Self {
        Self { base, prefix }
    }

    /// `A.B.C.D/N` as dockerd takes it (host bits cleared, as it does),
    /// with its words for a bad one. Only IPv4, /8 to /30: a smaller one
    /// has no address to give.
    fn parse(text: &str) -> Result<Self, DaemonError> {
        let bad = || {
            DaemonError::Internal(format!(
                "Invalid subnet {text} : invalid CIDR address: {text}"
            ))
        };
        let (addr, len) = text.split_once('/').ok_or_else(bad)?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if addr.contains(':') {
            return Err(DaemonError::invalid(format!(
                "subnet {text}: IPv6 is not supported: a wrun network hands out IPv4 addresses only"
            )));
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        if !(8..=30).contains(&len) {
            return Err(DaemonError::invalid(format!(
                "subnet {text}: the prefix length must be between 8 and 30, for addresses to give"
            )));
        }
        let s = Self::new(addr, len);
        Ok(Self::new(Ipv4Addr::from(u32::from(addr) & s.mask()), len))
    }

    fn mask(self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    fn contains(self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.base)
    }

    fn overlaps(self, other: Subnet) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// The addresses an endpoint may get: all but the subnet's own and
    /// its broadcast address.
    fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.base) + 1;
        let last = u32::from(self.base) | !self.mask();
        (first..last).map(Ipv4Addr::from)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// A user-defined network as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    id: String,
    name: String,
    created: String,
    internal: bool,
    attachable: bool,
    labels: BTreeMap<String, String>,
    subnet: Subnet,
    gateway: Ipv4Addr,
    /// What inspect's `IPAM` echoes of the request, as dockerd does: its
    /// `Options` (`null` when it sent none) and whether it gave the subnet
    /// and the gateway (a given pool is shown as given).
    #[serde(default)]
    ipam_options_sent: bool,
    #[serde(default)]
    subnet_given: bool,
    #[serde(default)]
    gateway_given: bool,
    /// The instances on it by ID.
    endpoints: BTreeMap<String, Endpoint>,
}

/// One instance on a network. Its address is held from the connect until
/// the instance leaves the network or is removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Endpoint {
    endpoint_id: String,
    aliases: Vec<String>,
    address: Ipv4Addr,
}

impl Endpoint {
    /// dockerd's MAC for an address: 02:42 and its four bytes.
    fn mac(&self) -> String {
        let [a, b, c, d] = self.address.octets();
        format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
    }
}

impl NetworkRecord {
    fn free_address(&self) -> Option<Ipv4Addr> {
        self.subnet
            .hosts()
            .find(|a| *a != self.gateway && !self.endpoints.values().any(|e| e.address == *a))
    }

    /// The settings inspect shows for instance `short_id`'s endpoint.
    fn endpoint_settings(&self, e: &Endpoint, short_id: &str) -> EndpointSettings {
        let mut aliases = e.aliases.clone();
        // dockerd adds the short ID to every endpoint of a user network.
        if !aliases.iter().any(|a| a == short_id) {
            aliases.push(short_id.to_string());
        }
        EndpointSettings {
            aliases: Some(aliases),
            network_id: self.id.clone(),
            endpoint_id: e.endpoint_id.clone(),
            gateway: self.gateway.to_string(),
            ip_address: e.address.to_string(),
            ip_prefix_len: i64::from(self.subnet.prefix),
            mac_address: Some(e.mac()),
            ..EndpointSettings::default()
        }
    }
}

/// A network a request names: a predefined one or a user-defined one.
pub(crate) enum Found {
    Predefined(&'static str, &'static str),
    User(NetworkRecord),
}

/// A user-defined network by its ID and name, as an event names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkName {
    pub id: String,
    pub name: String,
}

/// The networks of the daemon.
pub struct NetworkTable {
    by_id: Mutex<BTreeMap<String, NetworkRecord>>,
    journal: Arc<RecordJournal>,
    /// When the daemon started: the predefined networks' `Created`.
    started: String,
    /// The in-process network of the running instances (their listeners
    /// and connections); this table is its directory.
    peers: PeerNet,
    /// The names of the instances attached to it (given at each start),
    /// by ID: a peer is found by its container name too.
    names: Mutex<HashMap<String, String>>,
}

/// The table as the in-process network's directory (weak: the table owns
/// the network).
struct Directory(Weak<NetworkTable>);

impl PeerDirectory for Directory {
    fn resolve(&self, instance: &str, name: &str) -> Vec<PeerAddr> {
        self.0
            .upgrade()
            .map(|t| t.resolve(instance, name))
            .unwrap_or_default()
    }

    fn route(&self, instance: &str, addr: IpAddr) -> Route {
        match self.0.upgrade() {
            Some(t) => t.route(instance, addr),
            None => Route::Unreachable,
        }
    }

    fn own_addresses(&self, instance: &str) -> Vec<Ipv4Addr> {
        self.0
            .upgrade()
            .map(|t| t.own_addresses(instance))
            .unwrap_or_default()
    }
}

/// Whether `name` names instance `id` as dockerd 20.10's embedded DNS
/// answers (checked against it): its container name `container`, one of
/// `aliases` or its short (12-digit) ID, case-insensitively; not its full
/// ID.
fn answers_to(name: &str, id: &str, container: Option<&str>, aliases: &[String]) -> bool {
    let is = |candidate: &str| !candidate.is_empty() && candidate.eq_ignore_ascii_case(name);
    is(&id[..id.len().min(12)])
        || container.is_some_and(|c| is(c.trim_start_matches('/')))
        || aliases.iter().any(|a| is(a))
}

/// `NAME.NETWORK` (dockerd answers it too) as NAME, when the suffix is
/// network `network`'s name.
fn on_network<'a>(name: &'a str, network: &str) -> Option<&'a str> {
    let cut = name.len().checked_sub(network.len() + 1)?;
    // A guest's name is any string: never cut inside a character.
    let (head, tail) = (name.get(..cut)?, name.get(cut..)?);
    let suffix = tail.strip_prefix('.')?;
    suffix.eq_ignore_ascii_case(network).then_some(head)
}

impl LiveRecords for NetworkTable {
    fn visit_live(
        &self,
        visit: &mut dyn FnMut(&str, &serde_json::Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for (id, n) in self.lock().iter() {
            visit(id, &serde_json::to_value(n)?)?;
        }
        Ok(())
    }
}

/// The ID of a predefined network: the same on every start, as a client
/// may keep it.
fn predefined_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("wrun predefined network {name}")))
}

impl NetworkTable {
    /// Reads the journal under `root`/networks; endpoints of instances
    /// `exists` does not know (removed while a change was not journaled)
    /// are dropped.
    pub fn load(root: &Path, exists: &dyn Fn(&str) -> bool) -> anyhow::Result<Arc<Self>> {
        let dir = root.join("networks");
        wrun_image::store::create_private_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let loaded = records::read(&dir)?;
        for problem in &loaded.problems {
            eprintln!("wrun daemon: {problem}");
        }
        let mut by_id = BTreeMap::new();
        for (id, value) in loaded.records {
            match NetworkRecord::deserialize(value) {
                Ok(mut n) if n.id == id => {
                    n.endpoints.retain(|c, _| exists(c));
                    by_id.insert(id, n);
                }
                Ok(_) => eprintln!("wrun daemon: skipping network record {id}: it names another"),
                Err(e) => eprintln!("wrun daemon: skipping network record {id}: {e}"),
            }
        }
        let live = by_id
            .iter()
            .map(|(id, n)| Ok((id.clone(), serde_json::to_value(n)?)))
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        let journal = RecordJournal::start(&dir, &live)?;
        let table = Arc::new_cyclic(|me| Self {
            by_id: Mutex::new(by_id),
            journal: Arc::clone(&journal),
            started: wrun_api::time::now(),
            peers: PeerNet::new(Arc::new(Directory(me.clone()))),
            names: Mutex::new(HashMap::new()),
        });
        journal.set_live_source(&table);
        Ok(table)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, NetworkRecord>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn names(&self) -> MutexGuard<'_, HashMap<String, String>> {
        // Single inserts and removes: usable after a panic.
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Instance `id`'s view of the in-process network, for the run that
    /// starts now (set it in the spec's `network.peers`): the peers on the
    /// networks it is on, or joins while it runs, by name (`name`, its
    /// aliases, its IDs) and address. `None` for an instance in `none` or
    /// `host` mode, which joins no network. The view ends with the run.
    pub fn attach(&self, id: &str, name: &str, network_mode: &str) -> Option<InstancePeers> {
        if matches!(network_mode, "none" | "host") {
            return None;
        }
        self.names().insert(id.to_string(), name.to_string());
        Some(self.peers.attach(id))
    }

    /// Instance `id` is now called `name`: its peers find it by that name
    /// from now on (dockerd's DNS too answers to the new name at once).
    pub fn renamed(&self, id: &str, name: &str) {
        if let Some(known) = self.names().get_mut(id) {
            *known = name.to_string();
        }
    }

    fn resolve(&self, me: &str, name: &str) -> Vec<PeerAddr> {
        let names = self.names();
        let mut found = Vec::new();
        for n in self.lock().values() {
            if !n.endpoints.contains_key(me) {
                continue;
            }
            let qualified = on_network(name, &n.name);
            for (id, e) in &n.endpoints {
                let container = names.get(id).map(String::as_str);
                if answers_to(name, id, container, &e.aliases)
                    || qualified.is_some_and(|q| answers_to(q, id, container, &e.aliases))
                {
                    found.push(PeerAddr {
                        instance: id.clone(),
                        addr: e.address,
                    });
                }
            }
        }
        found
    }

    fn route(&self, me: &str, addr: IpAddr) -> Route {
        let IpAddr::V4(addr) = addr.to_canonical() else {
            return Route::Host;
        };
        let table = self.lock();
        let Some(n) = table.values().find(|n| n.subnet.contains(addr)) else {
            return Route::Host;
        };
        let Some(from) = n.endpoints.get(me) else {
            return Route::Unreachable;
        };
        match n.endpoints.iter().find(|(_, e)| e.address == addr) {
            Some((peer, _)) => Route::Peer {
                peer: peer.clone(),
                from: from.address,
            },
            None => Route::Unreachable,
        }
    }

    fn own_addresses(&self, me: &str) -> Vec<Ipv4Addr> {
        self.lock()
            .values()
            .filter_map(|n| n.endpoints.get(me).map(|e| e.address))
            .collect()
    }

    /// Journals `n` (under the table's lock, so a compaction sees it).
    fn save(&self, n: &NetworkRecord) -> Result<(), DaemonError> {
        self.journal
            .put(&n.id, n)
            .map_err(|e| DaemonError::Internal(crate::error::describe(&e)))
    }

    /// The network `key` names: an ID, a unique ID prefix or a name.
    pub(crate) fn find(&self, key: &str) -> Result<Found, DaemonError> {
        Self::find_in(&self.lock(), key)
    }

    /// The user networks no instance is on that `select` picks by their
    /// labels and creation time, as (ID, name): what a prune may remove.
    pub(crate) fn unused(
        &self,
        select: impl Fn(&BTreeMap<String, String>, &str) -> bool,
    ) -> Vec<(String, String)> {
        self.lock()
            .values()
            .filter(|n| n.endpoints.is_empty() && select(&n.labels, &n.created))
            .map(|n| (n.id.clone(), n.name.clone()))
            .collect()
    }

    /// dockerd's lookup: a full ID, then a name, then a unique ID prefix.
    fn find_in(table: &BTreeMap<String, NetworkRecord>, key: &str) -> Result<Found, DaemonError> {
        let not_found = || DaemonError::not_found(format!("network {key} not found"));
        if key.is_empty() {
            return Err(not_found());
        }
        for (name, driver) in PREDEFINED {
            if key == name || key == predefined_id(name) {
                return Ok(Found::Predefined(name, driver));
            }
        }
        if let Some(n) = table.get(key) {
            return Ok(Found::User(n.clone()));
        }
        if let Some(n) = table.values().find(|n| n.name == key) {
            return Ok(Found::User(n.clone()));
        }
        let mut by_prefix: Vec<Found> = table
            .values()
            .filter(|n| n.id.starts_with(key))
            .map(|n| Found::User(n.clone()))
            .collect();
        by_prefix.extend(
            PREDEFINED
                .iter()
                .filter(|(name, _)| predefined_id(name).starts_with(key))
                .map(|(name, driver)| Found::Predefined(name, driver)),
        );
        match by_prefix.len() {
            0 => Err(not_found()),
            1 => Ok(by_prefix.remove(0)),
            n => Err(DaemonError::not_found(format!(
                "network {key} is ambiguous ({n} matches found based on ID prefix)"
            ))),
        }
    }

    /// The user-defined network `key` names; a predefined one is `what`'s
    /// dockerd refusal.
    fn find_user(
        table: &BTreeMap<String, NetworkRecord>,
        key: &str,
        predefined: impl Fn(&str) -> DaemonError,
    ) -> Result<NetworkRecord, DaemonError> {
        match Self::find_in(table, key)? {
            Found::User(n) => Ok(n),
            Found::Predefined(name, _) => Err(predefined(name)),
        }
    }

    /// Whether `key` names a network (for a create that asks for one).
    pub fn user_network_id(&self, key: &str) -> Result<String, DaemonError> {
        Self::find_user(&self.lock(), key, |name| {
            DaemonError::invalid(format!("network {name} is predefined, not user-defined"))
        })
        .map(|n| n.id)
    }

    pub(crate) fn view(&self, found: &Found, names: &dyn Fn(&str) -> Option<String>) -> Network {
        match found {
            Found::Predefined(name, driver) => Network {
                name: (*name).into(),
                id: predefined_id(name),
                created: self.started.clone(),
                scope: "local".into(),
                driver: (*driver).into(),
                ipam: Ipam {
                    driver: "default".into(),
                    options: None,
                    config: Some(Vec::new()),
                },
                ..Network::default()
            },
            Found::User(n) => Network {
                name: n.name.clone(),
                id: n.id.clone(),
                created: n.created.clone(),
                scope: "local".into(),
                driver: BRIDGE_DRIVER.into(),
                ipam: Ipam {
                    driver: "default".into(),
                    options: n.ipam_options_sent.then(BTreeMap::new),
                    config: Some(vec![IpamConfig {
                        subnet: n.subnet.to_string(),
                        gateway: if n.subnet_given && !n.gateway_given {
                            String::new()
                        } else {
                            n.gateway.to_string()
                        },
                        ..IpamConfig::default()
                    }]),
                },
                internal: n.internal,
                attachable: n.attachable,
                config_from: ConfigReference::default(),
                containers: n
                    .endpoints
                    .iter()
                    .map(|(cid, e)| {
                        let c = NetworkContainer {
                            name: names(cid).unwrap_or_default(),
                            endpoint_id: e.endpoint_id.clone(),
                            mac_address: e.mac(),
                            ipv4_address: format!("{}/{}", e.address, n.subnet.prefix),
                            ipv6_address: String::new(),
                        };
                        (cid.clone(), c)
                    })
                    .collect(),
                labels: n.labels.clone(),
                ..Network::default()
            },
        }
    }

    /// Every network, predefined ones first, then by name.
    pub(crate) fn all(&self) -> Vec<Found> {
        let table = self.lock();
        let mut users: Vec<&NetworkRecord> = table.values().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        PREDEFINED
            .iter()
            .map(|(name, driver)| Found::Predefined(name, driver))
            .chain(users.into_iter().map(|n| Found::User(n.clone())))
            .collect()
    }

    pub(crate) fn create(
        &self,
        req: NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse, DaemonError> {
        check_network_name(&req.name).map_err(DaemonError::Internal)?;
        match req.driver.as_str() {
            "" | BRIDGE_DRIVER => {}
            "overlay" => {
                return Err(DaemonError::Internal(
                    "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".into(),
                ));
            }
            other => {
                return Err(DaemonError::not_found(format!(
                    "plugin \"{other}\" not found"
                )));
            }
        }
        if req.enable_ipv6 {
            return Err(DaemonError::invalid(
                "IPv6 is not supported: a wrun network hands out IPv4 addresses only (leave --ipv6 out)",
            ));
        }
        if req.ingress || req.config_only || req.config_from.is_some_and(|c| !c.network.is_empty())
        {
            return Err(DaemonError::invalid(
                "ingress, config-only and config-from networks are swarm's: wrun has none (leave --ingress, --config-only and --config-from out)",
            ));
        }
        if !matches!(req.scope.as_str(), "" | "local") {
            return Err(DaemonError::invalid(format!(
                "scope {}: wrun networks are local to the daemon (leave --scope out)",
                req.scope
            )));
        }
        if let Some(opts) = req.options.as_ref().filter(|o| !o.is_empty()) {
            let keys: Vec<&str> = opts.keys().map(String::as_str).collect();
            return Err(DaemonError::invalid(format!(
                "network options ({}) are not supported: wrun has no network driver to give them to (leave -o out)",
                keys.join(", ")
            )));
        }
        let ipam = req.ipam.unwrap_or_default();
        let ipam_options_sent = ipam.options.is_some();
        if !matches!(ipam.driver.as_str(), "" | "default") {
            return Err(DaemonError::not_found(format!(
                "plugin \"{}\" not found",
                ipam.driver
            )));
        }
        if ipam.options.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(DaemonError::invalid(
                "IPAM options are not supported: wrun's address allocator takes none (leave --ipam-opt out)",
            ));
        }
        let pools = ipam.config.unwrap_or_default();
        if pools.len() > 1 {
            return Err(DaemonError::invalid(
                "one subnet per network: wrun hands out IPv4 addresses from a single pool (give one --subnet)",
            ));
        }
        let pool = pools.into_iter().next().unwrap_or_default();
        if !pool.ip_range.is_empty() {
            return Err(DaemonError::invalid(
                "--ip-range is not supported: a wrun network gives addresses from its whole subnet",
            ));
        }
        if pool
            .auxiliary_addresses
            .as_ref()
            .is_some_and(|a| !a.is_empty())
        {
            return Err(DaemonError::invalid(
                "--aux-address is not supported: a wrun network has no host to reserve addresses for",
            ));
        }
        let mut table = self.lock();
        if table.values().any(|n| n.name == req.name)
            || PREDEFINED.iter().any(|(n, _)| *n == req.name)
        {
            return Err(DaemonError::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let taken: Vec<Subnet> = table.values().map(|n| n.subnet).collect();
        let subnet = if pool.subnet.is_empty() {
            if !pool.gateway.is_empty() {
                return Err(DaemonError::invalid(
                    "a gateway needs a subnet: give --subnet with --gateway",
                ));
            }
            default_pools()
                .find(|p| !taken.iter().any(|t| t.overlaps(*p)))
                .ok_or_else(|| {
                    DaemonError::Internal(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                    )
                })?
        } else {
            let s = Subnet::parse(&pool.subnet)?;
            if taken.iter().any(|t| t.overlaps(s)) {
                return Err(DaemonError::Forbidden(
                    "Pool overlaps with other one on this address space".into(),
                ));
            }
            s
        };
        let gateway = if pool.gateway.is_empty() {
            subnet.hosts().next().unwrap_or(subnet.base)
        } else {
            let g: Ipv4Addr = pool.gateway.parse().map_err(|_| {
                DaemonError::invalid(format!("invalid gateway address {}", pool.gateway))
            })?;
            if !subnet.hosts().any(|h| h == g) {
                return Err(DaemonError::Forbidden(format!(
                    "no available IPv4 addresses on this network's address pools: {} ({subnet}): gateway {g} is not an address of the subnet",
                    req.name
                )));
            }
            g
        };
        let n = NetworkRecord {
            id: crate::registry::new_id(),
            name: req.name,
            created: wrun_api::time::now(),
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels.unwrap_or_default(),
            subnet,
            gateway,
            ipam_options_sent,
            subnet_given: !pool.subnet.is_empty(),
            gateway_given: !pool.gateway.is_empty(),
            endpoints: BTreeMap::new(),
        };
        self.save(&n)?;
        let id = n.id.clone();
        table.insert(id.clone(), n);
        Ok(NetworkCreateResponse {
            id,
            warning: String::new(),
        })
    }

    /// Puts instance `c` on network `key` with `aliases`. A running
    /// instance already on it is refused as dockerd refuses it; a stopped
    /// one gets the new aliases (dockerd replaces its endpoint config).
    /// The network when an endpoint was made (not for new aliases alone).
    pub(crate) fn connect(
        &self,
        key: &str,
        c: &Container,
        aliases: Vec<String>,
    ) -> Result<Option<NetworkName>, DaemonError> {
        let (name, mode, live) = {
            let inner = c.lock();
            let r = &inner.record;
            (
                r.name.trim_start_matches('/').to_string(),
                r.host_config.network_mode.clone(),
                r.state.is_live(),
            )
        };
        let mut table = self.lock();
        let mut n = Self::find_user(&table, key, |name| {
            if name == "host" {
                DaemonError::invalid(
                    "container cannot be disconnected from host network or connected to host network",
                )
            } else {
                DaemonError::invalid(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                )
            }
        })?;
        match mode.as_str() {
            "host" => {
                return Err(DaemonError::invalid(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                ));
            }
            "none" => {
                return Err(DaemonError::invalid(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ));
            }
            _ => {}
        }
        for a in &aliases {
            check_network_name(a).map_err(|_| {
                DaemonError::invalid(format!(
                    "invalid network alias {a:?}: letters, digits, _ . - only"
                ))
            })?;
        }
        let mut joined = Some(NetworkName {
            id: n.id.clone(),
            name: n.name.clone(),
        });
        if let Some(e) = n.endpoints.get_mut(&c.id) {
            if live {
                return Err(DaemonError::Forbidden(format!(
                    "endpoint with name {name} already exists in network {}",
                    n.name
                )));
            }
            e.aliases = aliases;
            joined = None;
        } else {
            let address = n.free_address().ok_or_else(|| {
                DaemonError::Forbidden(format!(
                    "no available IPv4 addresses on this network's address pools: {} ({})",
                    n.name, n.id
                ))
            })?;
            n.endpoints.insert(
                c.id.clone(),
                Endpoint {
                    endpoint_id: crate::registry::new_id(),
                    aliases,
                    address,
                },
            );
        }
        self.save(&n)?;
        table.insert(n.id.clone(), n);
        Ok(joined)
    }

    /// Takes instance `id` off network `key`; the network it left.
    pub(crate) fn disconnect(&self, key: &str, id: &str) -> Result<NetworkName, DaemonError> {
        let mut table = self.lock();
        let mut n = Self::find_user(&table, key, |name| {
            if name == "host" {
                DaemonError::invalid(
                    "container cannot be disconnected from host network or connected to host network",
                )
            } else {
                DaemonError::Internal(format!(
                    "container {id} is not connected to the network {name}"
                ))
            }
        })?;
        let Some(gone) = n.endpoints.remove(id) else {
            return Err(DaemonError::Internal(format!(
                "container {id} is not connected to the network {}",
                n.name
            )));
        };
        let left = NetworkName {
            id: n.id.clone(),
            name: n.name.clone(),
        };
        self.save(&n)?;
        table.insert(n.id.clone(), n);
        drop(table);
        // Its open connections there end, at both ends, as on Linux when
        // an interface goes.
        self.peers.disconnected(id, gone.address);
        Ok(left)
    }

    /// Takes a removed instance off every network, its addresses released;
    /// the networks it left.
    pub fn leave_all(&self, id: &str) -> Vec<NetworkName> {
        let mut table = self.lock();
        let mut left = Vec::new();
        let mut addresses = Vec::new();
        for n in table.values_mut() {
            if let Some(gone) = n.endpoints.remove(id) {
                if let Err(e) = self.journal.put(&n.id, &*n) {
                    eprintln!("wrun daemon: {}", crate::error::describe(&e));
                }
                addresses.push(gone.address);
                left.push(NetworkName {
                    id: n.id.clone(),
                    name: n.name.clone(),
                });
            }
        }
        drop(table);
        self.names().remove(id);
        for addr in addresses {
            self.peers.disconnected(id, addr);
        }
        left
    }

    /// Removes network `key`; refused while an instance is on it. The
    /// network removed.
    pub(crate) fn remove(&self, key: &str) -> Result<NetworkName, DaemonError> {
        let mut table = self.lock();
        let n = Self::find_user(&table, key, |name| {
            DaemonError::Forbidden(format!(
                "{name} is a pre-defined network and cannot be removed"
            ))
        })?;
        if !n.endpoints.is_empty() {
            return Err(DaemonError::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.journal
            .remove(&n.id)
            .map_err(|e| DaemonError::Internal(crate::error::describe(&e)))?;
        table.remove(&n.id);
        Ok(NetworkName {
            id: n.id,
            name: n.name,
        })
    }

    /// Every instance on a network: its networks by name, with its
    /// endpoint on each.
    pub fn by_instance(
        &self,
    ) -> std::collections::HashMap<String, BTreeMap<String, EndpointSettings>> {
        let mut out: std::collections::HashMap<String, BTreeMap<String, EndpointSettings>> =
            std::collections::HashMap::new();
        for n in self.lock().values() {
            for (id, e) in &n.endpoints {
                let short = &id[..id.len().min(12)];
                out.entry(id.clone())
                    .or_default()
                    .insert(n.name.clone(), n.endpoint_settings(e, short));
            }
        }
        out
    }

    /// Instance `id`'s networks by name, with its endpoint on each.
    pub fn endpoints_of(&self, id: &str) -> BTreeMap<String, EndpointSettings> {
        let short = &id[..id.len().min(12)];
        self.lock()
            .values()
            .filter_map(|n| {
                n.endpoints
                    .get(id)
                    .map(|e| (n.name.clone(), n.endpoint_settings(e, short)))
            })
            .collect()
    }
}

/// What an endpoint request may ask of a wrun network: aliases; an
/// address, links, a MAC or driver options are refused.
pub fn check_endpoint(network: &str, e: &EndpointSettings) -> Result<(), DaemonError> {
    let given = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let text = |v: Option<&String>| v.is_some_and(|v| !v.is_empty());
    if e.ipam_config.as_ref().is_some_and(|i| {
        text(i.ipv4_address.as_ref()) || text(i.ipv6_address.as_ref()) || given(&i.link_local_ips)
    }) {
        return Err(DaemonError::invalid(format!(
            "network {network}: a user specified IP address cannot be given: wrun gives each instance the next free address of the subnet"
        )));
    }
    if given(&e.links) {
        return Err(DaemonError::invalid(
            "links are not supported: instances on one network will find each other by name (docs/networks.md)",
        ));
    }
    if text(e.mac_address.as_ref()) {
        return Err(DaemonError::invalid(
            "MacAddress cannot be set: a wasm instance has no network interface",
        ));
    }
    if e.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(DaemonError::invalid(format!(
            "network {network}: driver options are not supported: wrun has no network drivers"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_as_dockerd_reads_them() {
        let s = Subnet::parse("10.1.2.3/16").unwrap();
        assert_eq!(s.to_string(), "10.1.0.0/16");
        assert!(Subnet::parse("bogus").is_err());
        assert!(Subnet::parse("10.0.0.0/33").is_err());
        assert!(Subnet::parse("10.0.0.0/31").is_err());
        assert!(Subnet::parse("fd00::/64").is_err());
        assert!(
            Subnet::parse("172.18.5.0/24")
                .unwrap()
                .overlaps(Subnet::parse("172.18.0.0/16").unwrap())
        );
        assert!(
            !Subnet::parse("172.19.0.0/16")
                .unwrap()
                .overlaps(Subnet::parse("172.18.0.0/16").unwrap())
        );
    }

    #[test]
    fn a_subnet_hands_out_neither_its_own_nor_its_broadcast_address() {
        let s = Subnet::parse("10.9.9.0/30").unwrap();
        let hosts: Vec<String> = s.hosts().map(|a| a.to_string()).collect();
        assert_eq!(hosts, ["10.9.9.1", "10.9.9.2"]);
    }

    #[test]
    fn peers_answer_to_what_dockerds_dns_answers() {
        let id = "4af8343a600fcc50718a59d260317f465344894d22c84b91cbe636e088eab8cf";
        let aliases = vec!["web".to_string()];
        for name in ["srv", "SRV", "web", "4af8343a600f"] {
            assert!(answers_to(name, id, Some("/srv"), &aliases), "{name}");
        }
        for name in [id, "4af8343a", "other", ""] {
            assert!(!answers_to(name, id, Some("/srv"), &aliases), "{name}");
        }
        assert_eq!(on_network("srv.net", "net"), Some("srv"));
        assert_eq!(on_network("srv.NET", "net"), Some("srv"));
        assert_eq!(on_network("srv.net", "other"), None);
        assert_eq!(on_network("srvnet", "net"), None);
        assert_eq!(on_network("net", "net"), None);
        assert_eq!(on_network("éé", "ab"), None);
    }

    #[test]
    fn the_default_pools_skip_the_default_bridges() {
        let first = default_pools().next().unwrap();
        assert_eq!(first.to_string(), "172.18.0.0/16");
        assert_eq!(default_pools().count(), 14 + 16);
    }
}

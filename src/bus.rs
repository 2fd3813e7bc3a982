//! The bus: one named shared-memory segment, and the entry point to topics.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{BusError, TopicError};
use crate::publisher::Publisher;
use crate::segment::{self, Segment};
use crate::subscriber::{Subscriber, SubscriberConfig};
use crate::sync::atomic::Ordering;
use crate::topic::{self, Topic, TopicConfig, TopicStats};
use crate::{liveness, sys};

/// How a bus is created (and how long openers wait).
///
/// # Examples
/// ```
/// let cfg = shmbus::BusConfig { size: 64 << 20, ..Default::default() };
/// assert_eq!(cfg.mode, 0o600);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Segment size in bytes (rounded up to 4 KiB), 64 KiB..=1 TiB. The whole size is reserved
    /// in `/dev/shm` at creation, so a full `/dev/shm` is an error then, never a crash later.
    pub size: u64,
    /// Entries in the topic table, 1..=4096.
    pub max_topics: u32,
    /// Permission bits of the shared-memory object (applied exactly, not masked by the umask).
    pub mode: u32,
    /// Geometry of topics created on first use by [`Bus::topic`], [`Bus::publisher`] and
    /// [`Bus::subscriber`].
    pub default_topic: TopicConfig,
    /// How long `open` waits for a creator to finish initialising, and how long topic creation
    /// waits for the table lock.
    pub open_timeout: Duration,
    /// Map every page at attach time (`MAP_POPULATE`), so no page fault lands on the hot path.
    pub prefault: bool,
}

impl Default for BusConfig {
    /// 16 MiB, 64 topics, mode 0600, default topics of 1024 × 256 B, 2 s timeout, prefault on.
    fn default() -> Self {
        BusConfig {
            size: 16 << 20,
            max_topics: 64,
            mode: 0o600,
            default_topic: TopicConfig::default(),
            open_timeout: Duration::from_secs(2),
            prefault: true,
        }
    }
}

/// Facts about a bus, from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusInfo {
    /// The bus name.
    pub name: String,
    /// Segment size in bytes.
    pub size: u64,
    /// Permission bits it was created with.
    pub mode: u32,
    /// The creator's pid.
    pub creator_pid: u32,
    /// Whether the creator still runs.
    pub creator_alive: bool,
    /// Creation time, ns since the Unix epoch.
    pub created_at_unix_ns: u64,
    /// Topic table capacity.
    pub max_topics: u32,
    /// Topics in use.
    pub topics: u32,
    /// Arena bytes in use / total.
    pub arena_used: u64,
    /// Arena size in bytes.
    pub arena_size: u64,
}

/// A handle on a bus: a named shared-memory segment that any number of processes map.
///
/// `Bus` is cheap to clone, `Send` and `Sync`: threads share one mapping. Publishers and
/// subscribers keep the mapping alive, so a `Bus` may be dropped while they are in use.
///
/// # Examples
/// ```
/// # let name = format!("doc-bus-{}", std::process::id());
/// let bus = shmbus::Bus::open_or_create(&name, &shmbus::BusConfig::default())?;
/// let topic = bus.topic("sensors/imu")?;
/// assert_eq!(topic.config(), shmbus::TopicConfig::default());
/// # drop((topic, bus)); shmbus::Bus::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Bus {
    seg: Arc<Segment>,
    default_topic: TopicConfig,
    timeout: Duration,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("name", &self.seg.name).finish()
    }
}

impl Bus {
    /// Creates a new bus. Fails if one of that name exists.
    ///
    /// # Errors
    /// [`BusError::AlreadyExists`], [`BusError::InvalidName`], [`BusError::InvalidConfig`],
    /// [`BusError::PermissionDenied`], [`BusError::OutOfSpace`], [`BusError::Io`].
    pub fn create(name: &str, cfg: &BusConfig) -> Result<Bus, BusError> {
        segment::validate_bus_name(name)?;
        cfg.default_topic
            .geometry_check()
            .map_err(|e| BusError::InvalidConfig(format!("default_topic: {e}")))?;
        let seg = Segment::create(name, cfg.size, cfg.max_topics, cfg.mode, cfg.prefault)?;
        Ok(Bus {
            seg: Arc::new(seg),
            default_topic: cfg.default_topic,
            timeout: cfg.open_timeout,
        })
    }

    /// A bus in this process's memory only (`Segment::private`): for tests of the ring code
    /// where shared memory cannot be mapped (Miri).
    #[cfg(test)]
    pub(crate) fn private(cfg: &BusConfig) -> Result<Bus, BusError> {
        let seg = Segment::private(cfg.size, cfg.max_topics)?;
        Ok(Bus {
            seg: Arc::new(seg),
            default_topic: cfg.default_topic,
            timeout: cfg.open_timeout,
        })
    }

    /// Opens an existing bus with the default configuration's timeout (2 s) and prefaulting.
    ///
    /// # Errors
    /// [`BusError::NotFound`], [`BusError::InvalidName`], [`BusError::VersionMismatch`],
    /// [`BusError::LayoutMismatch`], [`BusError::Corrupt`], [`BusError::CreatorDied`],
    /// [`BusError::NotInitialized`], [`BusError::PermissionDenied`], [`BusError::OutOfSpace`]
    /// (the mapping), [`BusError::Io`].
    pub fn open(name: &str) -> Result<Bus, BusError> {
        Self::open_with(name, &BusConfig::default())
    }

    /// Opens an existing bus, using `cfg`'s `open_timeout`, `prefault` and `default_topic`
    /// (the size, topic count and mode are the creator's).
    ///
    /// # Errors
    /// As [`Bus::open`].
    pub fn open_with(name: &str, cfg: &BusConfig) -> Result<Bus, BusError> {
        segment::validate_bus_name(name)?;
        let seg = Segment::open(name, cfg.open_timeout, cfg.prefault)?;
        Ok(Bus {
            seg: Arc::new(seg),
            default_topic: cfg.default_topic,
            timeout: cfg.open_timeout,
        })
    }

    /// Opens the bus if it exists, otherwise creates it. When several processes start at once,
    /// exactly one creates it and the others open it.
    ///
    /// # Errors
    /// As [`Bus::create`] and [`Bus::open`].
    pub fn open_or_create(name: &str, cfg: &BusConfig) -> Result<Bus, BusError> {
        // Bounded: each turn means another process created or removed the bus in between.
        let mut last = None;
        for _ in 0..16 {
            match Self::create(name, cfg) {
                Err(BusError::AlreadyExists(_)) => {}
                other => return other,
            }
            match Self::open_with(name, cfg) {
                Err(BusError::NotFound(n)) => last = Some(BusError::NotFound(n)),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| BusError::NotFound(name.to_owned())))
    }

    /// Removes the bus's name. Processes that have it mapped keep working; new `open`s fail,
    /// and the memory is freed when the last process unmaps it.
    ///
    /// # Errors
    /// [`BusError::NotFound`], [`BusError::PermissionDenied`], [`BusError::InvalidName`].
    pub fn remove(name: &str) -> Result<(), BusError> {
        segment::validate_bus_name(name)?;
        sys::shm_unlink(name).map_err(|e| match e.raw_os_error() {
            Some(c) if c == rustix::io::Errno::NOENT.raw_os_error() => {
                BusError::NotFound(name.to_owned())
            }
            Some(c) if c == rustix::io::Errno::ACCESS.raw_os_error() => {
                BusError::PermissionDenied(name.to_owned())
            }
            _ => BusError::Io(e),
        })
    }

    /// Names of the buses on this machine (objects named `/dev/shm/shmbus.*`).
    ///
    /// # Errors
    /// If `/dev/shm` cannot be read.
    pub fn list() -> std::io::Result<Vec<String>> {
        sys::shm_list()
    }

    /// The bus name.
    pub fn name(&self) -> &str {
        &self.seg.name
    }

    /// Facts from the bus header.
    pub fn info(&self) -> BusInfo {
        let h = self.seg.header();
        let creator = h.creator_pid.load(Ordering::Relaxed);
        let start = h.creator_start_time.load(Ordering::Relaxed);
        BusInfo {
            name: self.seg.name.clone(),
            size: self.seg.geom.total_size,
            mode: h.mode.load(Ordering::Relaxed),
            creator_pid: creator,
            creator_alive: liveness::owner_alive(liveness::owner_word(creator, start)),
            created_at_unix_ns: h.created_at_unix_ns.load(Ordering::Relaxed),
            max_topics: self.seg.geom.max_topics,
            topics: h.topic_count.load(Ordering::Relaxed),
            arena_used: h.arena_used.load(Ordering::Relaxed),
            arena_size: self.seg.geom.arena_size,
        }
    }

    /// Opens topic `name`, creating it with the bus's default geometry if it does not exist. An
    /// existing topic is opened with whatever geometry it has.
    ///
    /// # Errors
    /// [`TopicError::InvalidName`], [`TopicError::InvalidConfig`] (the bus's default topic
    /// geometry, when the topic is created), [`TopicError::TableFull`], [`TopicError::ArenaFull`],
    /// [`TopicError::LockTimeout`], [`TopicError::Corrupt`].
    pub fn topic(&self, name: &str) -> Result<Topic, TopicError> {
        let ring =
            topic::open_or_create(&self.seg, name, &self.default_topic, false, self.timeout)?;
        Ok(Topic {
            ring: Arc::new(ring),
        })
    }

    /// Opens topic `name`, creating it with `cfg` if it does not exist. If it exists, its
    /// geometry must equal `cfg`'s.
    ///
    /// # Errors
    /// [`TopicError::GeometryMismatch`], [`TopicError::DeliveryMismatch`],
    /// [`TopicError::InvalidConfig`], and those of [`Bus::topic`].
    pub fn topic_with(&self, name: &str, cfg: &TopicConfig) -> Result<Topic, TopicError> {
        let ring = topic::open_or_create(&self.seg, name, cfg, true, self.timeout)?;
        Ok(Topic {
            ring: Arc::new(ring),
        })
    }

    /// Opens an existing topic; never creates one.
    ///
    /// # Errors
    /// [`TopicError::NotFound`], [`TopicError::InvalidName`], [`TopicError::Corrupt`].
    pub fn open_topic(&self, name: &str) -> Result<Topic, TopicError> {
        Ok(Topic {
            ring: Arc::new(topic::open_existing(&self.seg, name)?),
        })
    }

    /// The topics on this bus with their geometry.
    pub fn topics(&self) -> Vec<(String, TopicConfig)> {
        topic::list(&self.seg)
    }

    /// Counters of every topic on this bus.
    pub fn stats(&self) -> Vec<TopicStats> {
        self.topics()
            .into_iter()
            .filter_map(|(name, _)| self.open_topic(&name).ok())
            .map(|t| t.stats())
            .collect()
    }

    /// A publisher on topic `name` (created with the default geometry if new).
    ///
    /// # Errors
    /// As [`Bus::topic`], and [`TopicError::PublisherTableFull`].
    pub fn publisher(&self, name: &str) -> Result<Publisher, TopicError> {
        self.topic(name)?.publisher()
    }

    /// A subscriber on topic `name` with the default [`SubscriberConfig`] (created with the
    /// default geometry if new). It receives messages published after this call.
    ///
    /// # Errors
    /// As [`Bus::topic`], and [`TopicError::SubscriberTableFull`].
    pub fn subscriber(&self, name: &str) -> Result<Subscriber, TopicError> {
        self.topic(name)?
            .subscriber_with(&SubscriberConfig::default())
    }
}

impl TopicConfig {
    pub(crate) fn geometry_check(&self) -> Result<(), String> {
        crate::ring::RingGeometry::plan(
            self.slots,
            self.payload_size,
            self.max_publishers,
            self.max_subscribers,
        )
        .map(|_| ())
    }
}

//! The metric families Warren exposes: names (without the `rabbitmq_` or
//! `warren_` prefix), types and help texts, RabbitMQ 3.10's where the name
//! is RabbitMQ's. Which detailed family (`?family=`) holds which. May use
//! `render`.

use super::render::{Family, Kind};

const fn f(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, help, kind }
}

use Kind::{Counter as C, Gauge as G, Histogram as H, Untyped as U};

// Node.
pub const ALARMS_FD: Family =
    f("alarms_file_descriptor_limit", U, "is 1 if file descriptor limit alarm is in effect");
pub const ALARMS_DISK: Family =
    f("alarms_free_disk_space_watermark", U, "is 1 if free disk space watermark alarm is in effect");
pub const ALARMS_MEMORY: Family =
    f("alarms_memory_used_watermark", U, "is 1 if VM memory watermark alarm is in effect");
pub const OPEN_FDS: Family = f("process_open_fds", G, "Open file descriptors");
pub const OPEN_TCP: Family = f("process_open_tcp_sockets", G, "Open TCP sockets");
pub const RESIDENT: Family = f("process_resident_memory_bytes", G, "Memory used in bytes");
pub const DISK_FREE: Family = f("disk_space_available_bytes", G, "Disk space available in bytes");
pub const MAX_FDS: Family = f("process_max_fds", G, "Open file descriptors limit");
pub const MAX_TCP: Family = f("process_max_tcp_sockets", G, "Open TCP sockets limit");
pub const MEMORY_LIMIT: Family = f("resident_memory_limit_bytes", G, "Memory high watermark in bytes");
pub const DISK_LIMIT: Family =
    f("disk_space_available_limit_bytes", G, "Free disk space low watermark in bytes");
pub const UPTIME: Family = f("erlang_uptime_seconds", G, "Node uptime");

// Churn.
pub const CONNECTIONS_OPENED: Family = f("connections_opened_total", C, "Total number of connections opened");
pub const CONNECTIONS_CLOSED: Family =
    f("connections_closed_total", C, "Total number of connections closed or terminated");
pub const CHANNELS_OPENED: Family = f("channels_opened_total", C, "Total number of channels opened");
pub const CHANNELS_CLOSED: Family = f("channels_closed_total", C, "Total number of channels closed");
pub const QUEUES_DECLARED: Family = f("queues_declared_total", C, "Total number of queues declared");
pub const QUEUES_CREATED: Family = f("queues_created_total", C, "Total number of queues created");
pub const QUEUES_DELETED: Family = f("queues_deleted_total", C, "Total number of queues deleted");

// Objects now.
pub const CONNECTIONS: Family = f("connections", G, "Connections currently open");
pub const CHANNELS: Family = f("channels", G, "Channels currently open");
pub const CONSUMERS: Family = f("consumers", G, "Consumers currently connected");
pub const QUEUES: Family = f("queues", G, "Queues available");

// Authentication.
pub const AUTH_TOTAL: Family = f("auth_attempts_total", C, "Total number of authentication attempts");
pub const AUTH_SUCCEEDED: Family =
    f("auth_attempts_succeeded_total", C, "Total number of successful authentication attempts");
pub const AUTH_FAILED: Family =
    f("auth_attempts_failed_total", C, "Total number of failed authentication attempts");

// Identity.
pub const BUILD_INFO: Family = f("build_info", U, "RabbitMQ & Erlang/OTP version info");
pub const IDENTITY_INFO: Family = f("identity_info", U, "RabbitMQ node & cluster identity info");

// Global counters (label `protocol`, some `queue_type`).
pub const G_CONSUMERS: Family = f("global_consumers", G, "Current number of consumers");
pub const G_PUBLISHERS: Family = f("global_publishers", G, "Current number of publishers");
pub const G_ACKED: Family =
    f("global_messages_acknowledged_total", C, "Total number of messages acknowledged by consumers");
pub const G_CONFIRMED: Family =
    f("global_messages_confirmed_total", C, "Total number of messages confirmed to publishers");
pub const G_DL_DELIVERY_LIMIT: Family = f(
    "global_messages_dead_lettered_delivery_limit_total",
    C,
    "Total number of messages dead-lettered due to delivery-limit exceeded",
);
pub const G_DL_EXPIRED: Family = f(
    "global_messages_dead_lettered_expired_total",
    C,
    "Total number of messages dead-lettered due to message TTL exceeded",
);
pub const G_DL_MAXLEN: Family = f(
    "global_messages_dead_lettered_maxlen_total",
    C,
    "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx",
);
pub const G_DL_REJECTED: Family = f(
    "global_messages_dead_lettered_rejected_total",
    C,
    "Total number of messages dead-lettered due to basic.reject or basic.nack",
);
pub const G_DELIVERED_CONSUME_AUTO: Family = f(
    "global_messages_delivered_consume_auto_ack_total",
    C,
    "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
);
pub const G_DELIVERED_CONSUME_MANUAL: Family = f(
    "global_messages_delivered_consume_manual_ack_total",
    C,
    "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
);
pub const G_DELIVERED_GET_AUTO: Family = f(
    "global_messages_delivered_get_auto_ack_total",
    C,
    "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
);
pub const G_DELIVERED_GET_MANUAL: Family = f(
    "global_messages_delivered_get_manual_ack_total",
    C,
    "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
);
pub const G_DELIVERED: Family =
    f("global_messages_delivered_total", C, "Total number of messages delivered to consumers");
pub const G_GET_EMPTY: Family =
    f("global_messages_get_empty_total", C, "Total number of times basic.get operations fetched no message");
pub const G_RECEIVED_CONFIRM: Family = f(
    "global_messages_received_confirm_total",
    C,
    "Total number of messages received from publishers expecting confirmations",
);
pub const G_RECEIVED: Family =
    f("global_messages_received_total", C, "Total number of messages received from publishers");
pub const G_REDELIVERED: Family =
    f("global_messages_redelivered_total", C, "Total number of messages redelivered to consumers");
pub const G_ROUTED: Family =
    f("global_messages_routed_total", C, "Total number of messages routed to queues or streams");
pub const G_UNROUTABLE_DROPPED: Family = f(
    "global_messages_unroutable_dropped_total",
    C,
    "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
);
pub const G_UNROUTABLE_RETURNED: Family = f(
    "global_messages_unroutable_returned_total",
    C,
    "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
);

/// A figure of a queue, from its `QueueInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFigure {
    Ready,
    Unacked,
    Messages,
    Consumers,
    Ram,
    RamBytes,
    ReadyRam,
    UnackedRam,
    Bytes,
    ReadyBytes,
    UnackedBytes,
    PagedOut,
    PagedOutBytes,
    Published,
}

/// How many `QueueFigure`s there are.
pub const QUEUE_FIGURES: usize = 14;

/// Queue families, each with the figure it shows.
pub const Q_READY: (Family, QueueFigure) =
    (f("queue_messages_ready", G, "Messages ready to be delivered to consumers"), QueueFigure::Ready);
pub const Q_UNACKED: (Family, QueueFigure) = (
    f("queue_messages_unacked", G, "Messages delivered to consumers but not yet acknowledged"),
    QueueFigure::Unacked,
);
pub const Q_MESSAGES: (Family, QueueFigure) = (
    f("queue_messages", G, "Sum of ready and unacknowledged messages - total queue depth"),
    QueueFigure::Messages,
);
pub const Q_CONSUMERS: (Family, QueueFigure) =
    (f("queue_consumers", G, "Consumers on a queue"), QueueFigure::Consumers);
pub const Q_PUBLISHED: (Family, QueueFigure) = (
    f("queue_messages_published_total", C, "Total number of messages published to queues"),
    QueueFigure::Published,
);

/// RabbitMQ's `queue_metrics` family, less what Warren has no figure for.
pub const QUEUE_METRICS: &[(Family, QueueFigure)] = &[
    Q_CONSUMERS,
    (f("queue_messages_ram", G, "Ready and unacknowledged messages stored in memory"), QueueFigure::Ram),
    (
        f("queue_messages_ram_bytes", G, "Size of ready and unacknowledged messages stored in memory"),
        QueueFigure::RamBytes,
    ),
    (f("queue_messages_ready_ram", G, "Ready messages stored in memory"), QueueFigure::ReadyRam),
    (f("queue_messages_unacked_ram", G, "Unacknowledged messages stored in memory"), QueueFigure::UnackedRam),
    (f("queue_messages_bytes", G, "Size in bytes of ready and unacknowledged messages"), QueueFigure::Bytes),
    (f("queue_messages_ready_bytes", G, "Size in bytes of ready messages"), QueueFigure::ReadyBytes),
    (
        f("queue_messages_unacked_bytes", G, "Size in bytes of all unacknowledged messages"),
        QueueFigure::UnackedBytes,
    ),
    (f("queue_messages_paged_out", G, "Messages paged out to disk"), QueueFigure::PagedOut),
    (
        f("queue_messages_paged_out_bytes", G, "Size in bytes of messages paged out to disk"),
        QueueFigure::PagedOutBytes,
    ),
];

/// RabbitMQ's `queue_coarse_metrics`.
pub const QUEUE_COARSE: &[(Family, QueueFigure)] = &[Q_READY, Q_UNACKED, Q_MESSAGES];

/// A figure of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnFigure {
    RecvOct,
    SendOct,
    RecvCnt,
    SendCnt,
    Channels,
}

/// RabbitMQ's `connection_coarse_metrics`.
pub const CONNECTION_COARSE: &[(Family, ConnFigure)] = &[
    (
        f("connection_incoming_bytes_total", C, "Total number of bytes received on a connection"),
        ConnFigure::RecvOct,
    ),
    (
        f("connection_outgoing_bytes_total", C, "Total number of bytes sent on a connection"),
        ConnFigure::SendOct,
    ),
];

/// RabbitMQ's `connection_metrics`.
pub const CONNECTION_METRICS: &[(Family, ConnFigure)] = &[
    (
        f("connection_incoming_packets_total", C, "Total number of packets received on a connection"),
        ConnFigure::RecvCnt,
    ),
    (
        f("connection_outgoing_packets_total", C, "Total number of packets sent on a connection"),
        ConnFigure::SendCnt,
    ),
    (f("connection_channels", G, "Channels on a connection"), ConnFigure::Channels),
];

/// What `/metrics/detailed?family=NAME` gives for each NAME Warren knows.
#[derive(Debug, Clone, Copy)]
pub enum Detailed {
    Queues(&'static [(Family, QueueFigure)]),
    Connections(&'static [(Family, ConnFigure)]),
}

/// The detailed families by RabbitMQ's names; any other name gives nothing.
pub fn detailed(name: &str) -> Option<Detailed> {
    const CONSUMER_COUNT: &[(Family, QueueFigure)] = &[Q_CONSUMERS];
    const DELIVERY: &[(Family, QueueFigure)] = &[Q_PUBLISHED];
    Some(match name {
        "queue_coarse_metrics" => Detailed::Queues(QUEUE_COARSE),
        "queue_consumer_count" => Detailed::Queues(CONSUMER_COUNT),
        "queue_metrics" => Detailed::Queues(QUEUE_METRICS),
        "channel_queue_exchange_metrics" => Detailed::Queues(DELIVERY),
        "connection_coarse_metrics" => Detailed::Connections(CONNECTION_COARSE),
        "connection_metrics" => Detailed::Connections(CONNECTION_METRICS),
        _ => return None,
    })
}

// Warren's own.
pub const W_BATCH_OPS: Family =
    f("store_batch_operations", H, "Operations written to the store per group commit");
pub const W_SYNC_SECONDS: Family =
    f("store_sync_duration_seconds", H, "Time to write and fsync one group commit that publishers wait on");
pub const W_FLOW_PAUSES: Family = f(
    "credit_flow_pauses_total",
    C,
    "Times a connection stopped reading because a queue it published to was congested",
);
pub const W_DELAYED: Family =
    f("delayed_messages", G, "Messages waiting on a delayed-message exchange until their x-delay is over");
pub const W_DEDUPLICATED: Family = f(
    "deduplicated_messages_total",
    C,
    "Messages a deduplicating queue or exchange dropped as duplicates of one it took",
);
pub const W_WRITE_ERRORS: Family =
    f("store_write_errors_total", C, "Group commits the store failed to write");

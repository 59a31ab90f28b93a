//! `warrenctl`'s everyday-operations verbs (queues, exchanges, bindings,
//! connections, channels, consumers, node status, messages, `top`), named as
//! rabbitmqctl's. Flattened into [`super::cli::Command`]; the doc comments
//! here are the `--help` texts.

use clap::Subcommand;

/// The operations verbs.
#[derive(Debug, Subcommand)]
#[command(rename_all = "snake_case")]
pub enum OpsCommand {
    /// List the queues of a vhost (default columns: name messages), a page at a time.
    #[command(after_help = "Columns are rabbitmqctl's or any API field (dot paths too): name messages \
        messages_ready messages_unacknowledged consumers durable auto_delete exclusive arguments policy \
        state type memory message_bytes message_bytes_ready message_bytes_unacknowledged \
        message_bytes_persistent messages_persistent consumer_utilisation head_message_timestamp \
        exclusive_consumer_tag owner_pid (the owning connection's name) pid (the queue's name) ...\n\n\
        Examples:\n  warrenctl list_queues\n  warrenctl list_queues -p orders name messages consumers state\n  \
        warrenctl --format json list_queues name messages_details.rate")]
    ListQueues {
        /// Columns to show.
        columns: Vec<String>,
    },
    /// List the exchanges of a vhost (default columns: name type).
    #[command(after_help = "Columns: name type durable auto_delete internal arguments policy, or any API \
        field.\n\nExample:\n  warrenctl list_exchanges -p / name type durable")]
    ListExchanges {
        /// Columns to show.
        columns: Vec<String>,
    },
    /// List the bindings of a vhost (default columns: source_name source_kind destination_name
    /// destination_kind routing_key arguments).
    #[command(after_help = "With --format json the fields are the API's: source, destination, \
        destination_type, routing_key, arguments (source_kind is always \"exchange\").\n\n\
        Example:\n  warrenctl list_bindings -p / source_name destination_name routing_key")]
    ListBindings {
        /// Columns to show.
        columns: Vec<String>,
    },
    /// List the connections of every vhost (default columns: user peer_host peer_port state).
    #[command(after_help = "Columns: name vhost user peer_host peer_port host port state channels \
        protocol auth_mechanism ssl ssl_protocol ssl_cipher recv_oct send_oct recv_cnt send_cnt \
        connected_at timeout frame_max channel_max client_properties, or any API field. Warren has \
        no Erlang pids: a connection is named by its `name`, and `pid` shows it.\n\n\
        Examples:\n  warrenctl list_connections\n  warrenctl list_connections name user vhost channels")]
    ListConnections {
        /// Columns to show.
        columns: Vec<String>,
    },
    /// List the channels of every vhost (default columns: pid user consumer_count
    /// messages_unacknowledged; `pid` is the channel's name, as Warren has no pids).
    #[command(after_help = "Columns: name (or pid) number connection user vhost consumer_count \
        prefetch_count global_prefetch_count messages_unacknowledged messages_unconfirmed \
        messages_uncommitted acks_uncommitted confirm transactional state, or any API field.\n\n\
        Example:\n  warrenctl list_channels name user prefetch_count")]
    ListChannels {
        /// Columns to show.
        columns: Vec<String>,
    },
    /// List the consumers of a vhost (default columns: queue_name channel_pid consumer_tag
    /// ack_required prefetch_count active arguments; `channel_pid` is the channel's name).
    #[command(after_help = "Example:\n  warrenctl list_consumers -p / queue_name consumer_tag")]
    ListConsumers {
        /// Columns to show.
        columns: Vec<String>,
    },
    /// Remove every ready message from a queue.
    #[command(after_help = "Example:\n  warrenctl purge_queue -p orders failed-orders")]
    PurgeQueue {
        /// The queue.
        queue: String,
    },
    /// Delete a queue (its messages are lost).
    #[command(after_help = "Examples:\n  warrenctl delete_queue old-q\n  \
        warrenctl delete_queue -p orders tmp --if-empty --if-unused")]
    DeleteQueue {
        /// The queue.
        queue: String,
        /// Only if it has no messages.
        #[arg(long = "if-empty", short = 'e')]
        if_empty: bool,
        /// Only if it has no consumers.
        #[arg(long = "if-unused", short = 'u')]
        if_unused: bool,
    },
    /// Delete an exchange (and its bindings).
    #[command(after_help = "Example:\n  warrenctl delete_exchange -p orders old-x")]
    DeleteExchange {
        /// The exchange.
        exchange: String,
    },
    /// Close a connection, named as list_connections' `name` column; the client gets
    /// 320 CONNECTION_FORCED with the explanation.
    #[command(after_help = "Example:\n  warrenctl close_connection '127.0.0.1:56046 -> 127.0.0.1:5672' \
        'maintenance'")]
    CloseConnection {
        /// The connection's name.
        name: String,
        /// The reason the client is told.
        explanation: String,
    },
    /// Close every connection of a vhost (-p, default /), or of all vhosts with --global.
    #[command(after_help = "Examples:\n  warrenctl close_all_connections -p orders 'vhost maintenance'\n  \
        warrenctl close_all_connections --global --limit 100 'rebalancing'")]
    CloseAllConnections {
        /// Every vhost's connections.
        #[arg(long)]
        global: bool,
        /// Close at most this many.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// The reason the clients are told.
        explanation: String,
    },
    /// Close every connection of a user.
    #[command(after_help = "Example:\n  warrenctl close_all_user_connections alice 'password changed'")]
    CloseAllUserConnections {
        /// The user.
        user: String,
        /// The reason the clients are told.
        explanation: String,
    },
    /// Show the broker's status: versions, uptime, alarms, memory, file descriptors, disk,
    /// totals and listeners (--format json for rabbitmqctl's JSON keys).
    #[command(after_help = "Examples:\n  warrenctl status\n  warrenctl --format json status | jq .alarms")]
    Status,
    /// Check that the broker's admin API answers: prints "Ping succeeded", else exits 69.
    #[command(after_help = "Example:\n  warrenctl ping")]
    Ping,
    /// Wait (up to --timeout seconds) until the broker's admin API answers; silent.
    #[command(after_help = "Example:\n  warrenctl --timeout 120 await_startup && echo up")]
    AwaitStartup,
    /// Show the broker's effective settings and where each comes from (default, config
    /// file, flag or environment variable). Columns: key value source.
    #[command(after_help = "Examples:\n  warrenctl environment\n  warrenctl -s environment | grep ^amqp")]
    Environment {
        /// Columns to show.
        columns: Vec<String>,
    },
    /// Publish a message through the admin API (for tests and repairs, not for throughput).
    #[command(after_help = "Properties: content_type content_encoding delivery_mode priority \
        correlation_id reply_to expiration message_id timestamp type user_id app_id cluster_id, and \
        headers.<name> for a header.\n\nExamples:\n  warrenctl publish --routing-key my-q 'hello'\n  \
        echo '{\"id\":1}' | warrenctl publish -p orders --exchange orders --routing-key new \
        --property content_type=application/json --property delivery_mode=2 -")]
    Publish {
        /// The exchange ("" is the default exchange).
        #[arg(long, default_value = "", value_name = "NAME")]
        exchange: String,
        /// The routing key.
        #[arg(long = "routing-key", default_value = "", value_name = "KEY")]
        routing_key: String,
        /// A property or header, key=value (repeatable).
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
        /// The payload, or "-" to read it from stdin.
        #[arg(allow_hyphen_values = true)]
        payload: String,
    },
    /// Fetch messages from a queue through the admin API; by default they are put back
    /// (ack_requeue_true).
    #[command(after_help = "Columns: routing_key exchange message_count payload_bytes payload_encoding \
        payload redelivered properties.\n\nExamples:\n  warrenctl get my-q\n  \
        warrenctl get -p orders failed --count 10 --ackmode ack_requeue_false")]
    Get {
        /// The queue.
        queue: String,
        /// How many messages at most.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// What happens to the messages fetched.
        #[arg(long, default_value = "ack_requeue_true", value_parser = crate::ctl::verbs::ACK_MODES)]
        ackmode: String,
        /// auto: payloads as text when they are UTF-8, else base64.
        #[arg(long, default_value = "auto", value_parser = ["auto", "base64"])]
        encoding: String,
        /// Columns to show.
        columns: Vec<String>,
    },
    /// A live view of the busiest queues (by messages and by publish/deliver rates) and
    /// connections (by bytes per second), with the broker's totals. Ctrl-C quits.
    #[command(after_help = "Examples:\n  warrenctl top\n  warrenctl top --interval 5 --rows 20\n  \
        warrenctl top -n 1 > snapshot.txt")]
    Top {
        /// Seconds between frames (0.1 to 3600).
        #[arg(long, default_value_t = 2.0, value_name = "SECONDS", value_parser = interval_seconds)]
        interval: f64,
        /// Stop after this many frames.
        #[arg(short = 'n', long, value_name = "N")]
        iterations: Option<u64>,
        /// Rows per section.
        #[arg(long, default_value_t = 10, value_name = "N")]
        rows: usize,
    },
}

/// Shortest `top --interval`, in seconds.
pub const MIN_INTERVAL: f64 = 0.1;
/// Longest `top --interval`, in seconds.
pub const MAX_INTERVAL: f64 = 3600.0;

/// Parses `top --interval`: a finite number of seconds from
/// [`MIN_INTERVAL`] to [`MAX_INTERVAL`] (`nan`, `inf`, negative and huge
/// values are usage errors, not a panic in `Duration::from_secs_f64`).
pub fn interval_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| "not a number of seconds".to_string())?;
    if seconds.is_finite() && (MIN_INTERVAL..=MAX_INTERVAL).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!("must be from {MIN_INTERVAL} to {MAX_INTERVAL} seconds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_finite_and_in_range() {
        for ok in ["0.1", "2", " 2.5 ", "3600", "1e3", "+7"] {
            assert!(interval_seconds(ok).is_ok(), "{ok}");
        }
        for bad in [
            "nan", "NaN", "inf", "-inf", "infinity", "-1", "0", "0.09", "-0", "3600.01", "1e400", "1e-400",
            "", "x",
        ] {
            assert!(interval_seconds(bad).is_err(), "{bad}");
        }
    }
}

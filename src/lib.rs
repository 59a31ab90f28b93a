//! Warren: an AMQP 0-9-1 message broker, wire-compatible with RabbitMQ.
//!
//! Data flows one way: `server` accepts sockets, `connection` turns bytes into
//! frames (through the pure `protocol` codec) and commands for the `broker`,
//! which routes messages to queues and hands deliveries back to connections
//! as values on their outbound queues.

pub mod access;
pub mod admin;
pub mod allocator;
pub mod broker;
pub mod config;
pub mod connection;
pub mod ctl;
pub mod metrics;
pub mod perf;
pub mod protocol;
pub mod server;
pub mod store;

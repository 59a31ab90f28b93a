//! Client connections: the handshake, then one task per connection that
//! reads frames, drives its channels, writes deliveries, and keeps
//! heartbeats. May use `protocol` and `broker`.

mod auth;
mod channel;
mod confirms;
mod consume;
mod driver;
mod handshake;
#[doc(hidden)]
pub mod harness;
mod outbuf;
mod publish;
mod socket;
mod topology;
mod tx;
mod wait;

pub use driver::serve;
pub use handshake::server_properties;
pub use socket::{Socket, WriteHalf};

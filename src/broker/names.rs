//! Server-generated names: `amq.gen-…` queues and `amq.ctag-…` consumer tags,
//! 22 random base64url characters like RabbitMQ's.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn generate(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 22);
    s.push_str(prefix);
    s.extend((0..22).map(|_| ALPHABET[fastrand::usize(..64)] as char));
    s
}

pub fn queue_name() -> String {
    generate("amq.gen-")
}

pub fn consumer_tag() -> String {
    generate("amq.ctag-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn shape() {
        let n = super::queue_name();
        assert!(n.starts_with("amq.gen-") && n.len() == 30);
        assert_ne!(n, super::queue_name());
    }
}

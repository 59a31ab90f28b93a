//! The effective configuration and where each value came from (what
//! `warrenctl environment` prints): every setting as a dotted key, its
//! value, and its source: the built-in default, the config file, a
//! `WARREN_*` environment variable, or a command-line flag. Worked out by
//! comparing the configuration after each layer; secrets are redacted.
//! Pure.

use serde_json::{json, Map, Value};

/// Keys whose values are never shown.
fn secret(key: &str) -> bool {
    key.ends_with("password") || key.ends_with("password_hash")
}

/// Flattens `value` into dotted keys (arrays stay values).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

/// Replaces every secret inside `value` (also inside arrays of tables).
fn redact(key: &str, value: &mut Value) {
    match value {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                redact(k, v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(key, v)),
        other if secret(key) && !other.is_null() => *other = json!("<redacted>"),
        _ => {}
    }
}

fn lookup<'a>(flat: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    flat.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The settings in order, each `{"key","value","source"}`. The layers are
/// the configuration serialised: built-in defaults, after the file, after
/// the environment, and as finally used (after flags). `file_keys` are the
/// dotted keys the file sets (a value equal to the default still counts).
pub fn settings(
    defaults: &Value,
    after_file: &Value,
    after_env: &Value,
    effective: &Value,
    file: Option<(&str, &[String])>,
) -> Value {
    let layers: Vec<Vec<(String, Value)>> = [defaults, after_file, after_env, effective]
        .iter()
        .map(|v| {
            let mut flat = Vec::new();
            flatten("", v, &mut flat);
            flat
        })
        .collect();
    let mut out = Vec::new();
    for (key, value) in &layers[3] {
        let changed = |i: usize| lookup(&layers[i], key) != lookup(&layers[i - 1], key);
        let set_by_file = |keys: &[String]| {
            changed(1) || keys.iter().any(|k| k == key || key.starts_with(&format!("{k}.")))
        };
        let source = if changed(3) {
            "command-line flag".to_owned()
        } else if changed(2) {
            "environment variable".to_owned()
        } else if let Some((path, _)) = file.filter(|(_, keys)| set_by_file(keys)) {
            format!("config file {path}")
        } else {
            "default".to_owned()
        };
        let mut value = value.clone();
        redact(key.rsplit('.').next().unwrap_or(key), &mut value);
        let mut item = Map::new();
        item.insert("key".into(), json!(key));
        item.insert("value".into(), value);
        item.insert("source".into(), json!(source));
        out.push(Value::Object(item));
    }
    json!({"settings": out})
}

/// The dotted keys a TOML document sets.
pub fn toml_keys(text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml::Table>() else { return Vec::new() };
    let json = serde_json::to_value(doc).unwrap_or(Value::Null);
    let mut flat = Vec::new();
    flatten("", &json, &mut flat);
    flat.into_iter().map(|(k, _)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_names_its_layer_and_secrets_stay_hidden() {
        let d = json!({"amqp": {"port": 5672, "heartbeat": 60, "frame_max": 131072}, "users": []});
        let f = json!({"amqp": {"port": 5672, "heartbeat": 30, "frame_max": 131072},
                       "users": [{"name": "u", "password": "s3cret"}]});
        let e = json!({"amqp": {"port": 5672, "heartbeat": 30, "frame_max": 4096},
                       "users": [{"name": "u", "password": "s3cret"}]});
        let mut x = e.clone();
        x["amqp"]["port"] = json!(5680);
        let keys = toml_keys("[amqp]\nheartbeat = 30\n[[users]]\nname = \"u\"\npassword = \"s3cret\"\n");
        let s = settings(&d, &f, &e, &x, Some(("/etc/w.toml", &keys)));
        let find =
            |k: &str| s["settings"].as_array().unwrap().iter().find(|i| i["key"] == k).unwrap().clone();
        assert_eq!(find("amqp.port")["source"], "command-line flag");
        assert_eq!(find("amqp.frame_max")["source"], "environment variable");
        assert_eq!(find("amqp.heartbeat")["source"], "config file /etc/w.toml");
        assert_eq!(find("users")["source"], "config file /etc/w.toml");
        assert_eq!(find("users")["value"][0]["password"], "<redacted>");
        assert!(!s.to_string().contains("s3cret"));
    }
}

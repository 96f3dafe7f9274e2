//! The image configuration, kept as raw JSON.
//!
//! oci-spec's typed config drops Docker-only fields (`Healthcheck`, `OnBuild`, `Shell`,
//! `ArgsEscaped`…), and a base image's config must survive into the result untouched except for
//! what the Dockerfile changes. So the config stays a `serde_json::Value` (with key order
//! preserved) and this type offers typed accessors for the fields trowel reads and writes.

use serde_json::{Map, Value, json};

use crate::digest::Digest;
use crate::image::manifest::Platform;

/// Default `PATH` for images whose base sets none (what Docker and kaniko use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    raw: Value,
}

/// One `history` entry.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid image config: {0}")]
pub struct ConfigError(pub String);

impl ImageConfig {
    /// The config of `FROM scratch`: BuildKit's empty image (`emptyImage`) has `WorkingDir` `/`
    /// (and a default PATH, which the stage adds).
    pub fn scratch(platform: &Platform) -> ImageConfig {
        let mut raw = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {"WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        if let Some(v) = &platform.variant {
            raw["variant"] = json!(v);
        }
        ImageConfig { raw }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let raw: Value = serde_json::from_slice(bytes).map_err(|e| ConfigError(e.to_string()))?;
        if !raw.is_object() {
            return Err(ConfigError("not a JSON object".into()));
        }
        let cfg = ImageConfig { raw };
        if let Some(ids) = cfg.raw.pointer("/rootfs/diff_ids") {
            let arr = ids.as_array().ok_or_else(|| ConfigError("rootfs.diff_ids is not an array".into()))?;
            for id in arr {
                id.as_str()
                    .and_then(|s| s.parse::<Digest>().ok())
                    .ok_or_else(|| ConfigError(format!("bad diff_id {id}")))?;
            }
        }
        Ok(cfg)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.raw).expect("config serialises")
    }

    pub fn raw(&self) -> &Value {
        &self.raw
    }

    fn top(&mut self) -> &mut Map<String, Value> {
        self.raw.as_object_mut().expect("config is an object")
    }

    /// The inner `config` object (created on first write).
    fn inner_mut(&mut self) -> &mut Map<String, Value> {
        let top = self.top();
        let c = top.entry("config").or_insert_with(|| json!({}));
        if !c.is_object() {
            *c = json!({});
        }
        c.as_object_mut().unwrap()
    }

    fn inner(&self) -> Option<&Map<String, Value>> {
        self.raw.get("config").and_then(Value::as_object)
    }

    fn get_str(&self, key: &str) -> Option<&str> {
        self.inner()?.get(key)?.as_str()
    }

    fn get_strings(&self, key: &str) -> Option<Vec<String>> {
        let arr = self.inner()?.get(key)?.as_array()?;
        Some(arr.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
    }

    fn set(&mut self, key: &str, v: Option<Value>) {
        match v {
            Some(v) => {
                self.inner_mut().insert(key.to_string(), v);
            }
            None => {
                self.inner_mut().remove(key);
            }
        }
    }

    // ---- platform ----
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.raw.get("architecture").and_then(Value::as_str).unwrap_or("amd64").to_string(),
            os: self.raw.get("os").and_then(Value::as_str).unwrap_or("linux").to_string(),
            os_version: None,
            variant: self.raw.get("variant").and_then(Value::as_str).map(str::to_string),
        }
    }

    pub fn set_platform(&mut self, p: &Platform) {
        let top = self.top();
        top.insert("architecture".into(), json!(p.architecture));
        top.insert("os".into(), json!(p.os));
        match &p.variant {
            Some(v) => top.insert("variant".into(), json!(v)),
            None => top.remove("variant"),
        };
    }

    // ---- env ----
    /// `Env` as ordered `(name, value)` pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        self.get_strings("Env")
            .unwrap_or_default()
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect()
    }

    pub fn env_var(&self, name: &str) -> Option<String> {
        self.env().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Sets or replaces one variable, keeping the position of an existing one.
    pub fn set_env(&mut self, name: &str, value: &str) {
        let mut env = self.env();
        match env.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => env.push((name.to_string(), value.to_string())),
        }
        let list: Vec<Value> = env.into_iter().map(|(k, v)| json!(format!("{k}={v}"))).collect();
        self.set("Env", Some(Value::Array(list)));
    }

    // ---- process ----
    pub fn cmd(&self) -> Option<Vec<String>> {
        self.get_strings("Cmd")
    }
    pub fn set_cmd(&mut self, v: Option<Vec<String>>) {
        self.set("Cmd", v.map(|v| json!(v)));
    }
    pub fn entrypoint(&self) -> Option<Vec<String>> {
        self.get_strings("Entrypoint")
    }
    pub fn set_entrypoint(&mut self, v: Option<Vec<String>>) {
        self.set("Entrypoint", v.map(|v| json!(v)));
    }
    pub fn shell(&self) -> Option<Vec<String>> {
        self.get_strings("Shell")
    }
    pub fn set_shell(&mut self, v: Vec<String>) {
        self.set("Shell", Some(json!(v)));
    }
    pub fn working_dir(&self) -> Option<&str> {
        self.get_str("WorkingDir").filter(|s| !s.is_empty())
    }
    pub fn set_working_dir(&mut self, dir: &str) {
        self.set("WorkingDir", Some(json!(dir)));
    }
    pub fn user(&self) -> Option<&str> {
        self.get_str("User").filter(|s| !s.is_empty())
    }
    pub fn set_user(&mut self, user: &str) {
        self.set("User", Some(json!(user)));
    }
    /// Back to the default user (root): the field is left out, as BuildKit writes it.
    pub fn clear_user(&mut self) {
        self.set("User", None);
    }
    pub fn stop_signal(&self) -> Option<&str> {
        self.get_str("StopSignal")
    }
    pub fn set_stop_signal(&mut self, sig: &str) {
        self.set("StopSignal", Some(json!(sig)));
    }
    pub fn set_args_escaped(&mut self, v: Option<bool>) {
        self.set("ArgsEscaped", v.map(Value::Bool));
    }

    // ---- maps ----
    pub fn labels(&self) -> Vec<(String, String)> {
        self.inner()
            .and_then(|c| c.get("Labels"))
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default()
    }
    pub fn set_label(&mut self, key: &str, value: &str) {
        self.map_insert("Labels", key, json!(value));
    }
    pub fn exposed_ports(&self) -> Vec<String> {
        self.map_keys("ExposedPorts")
    }
    pub fn add_exposed_port(&mut self, port: &str) {
        self.map_insert("ExposedPorts", port, json!({}));
    }
    pub fn volumes(&self) -> Vec<String> {
        self.map_keys("Volumes")
    }
    pub fn add_volume(&mut self, path: &str) {
        self.map_insert("Volumes", path, json!({}));
    }

    fn map_keys(&self, key: &str) -> Vec<String> {
        self.inner()
            .and_then(|c| c.get(key))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn map_insert(&mut self, key: &str, k: &str, v: Value) {
        let inner = self.inner_mut();
        let m = inner.entry(key.to_string()).or_insert_with(|| json!({}));
        if !m.is_object() {
            *m = json!({});
        }
        m.as_object_mut().unwrap().insert(k.to_string(), v);
    }

    // ---- Docker-only fields ----
    pub fn healthcheck(&self) -> Option<&Value> {
        self.inner()?.get("Healthcheck")
    }
    pub fn set_healthcheck(&mut self, v: Value) {
        self.set("Healthcheck", Some(v));
    }
    pub fn onbuild(&self) -> Vec<String> {
        self.get_strings("OnBuild").unwrap_or_default()
    }
    pub fn set_onbuild(&mut self, triggers: Vec<String>) {
        if triggers.is_empty() {
            self.set("OnBuild", None);
        } else {
            self.set("OnBuild", Some(json!(triggers)));
        }
    }

    // ---- rootfs and history ----
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.raw
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn push_diff_id(&mut self, d: &Digest) {
        let top = self.top();
        let rootfs = top.entry("rootfs").or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if !rootfs.is_object() {
            *rootfs = json!({"type": "layers", "diff_ids": []});
        }
        let r = rootfs.as_object_mut().unwrap();
        r.insert("type".into(), json!("layers"));
        let ids = r.entry("diff_ids").or_insert_with(|| json!([]));
        if !ids.is_array() {
            *ids = json!([]);
        }
        ids.as_array_mut().unwrap().push(json!(d.as_str()));
    }

    /// The history, entry by entry: one malformed entry (a hostile or odd base config) reads as
    /// an empty entry and hides none of the others, and positions stay those of the raw array,
    /// which [`Self::set_history_created`] and [`Self::history_len`] use. (Found by fuzzing: a
    /// whole-array parse dropped every entry for one `empty_layer` that was not a boolean.)
    pub fn history(&self) -> Vec<History> {
        self.raw
            .get("history")
            .and_then(Value::as_array)
            .map(|h| h.iter().map(|e| serde_json::from_value(e.clone()).unwrap_or_default()).collect())
            .unwrap_or_default()
    }

    pub fn push_history(&mut self, h: History) {
        let top = self.top();
        let hist = top.entry("history").or_insert_with(|| json!([]));
        if !hist.is_array() {
            *hist = json!([]);
        }
        hist.as_array_mut().unwrap().push(serde_json::to_value(h).unwrap());
    }

    pub fn set_author(&mut self, author: &str) {
        self.top().insert("author".into(), json!(author));
    }

    pub fn created(&self) -> Option<&str> {
        self.raw.get("created").and_then(Value::as_str)
    }

    pub fn set_created(&mut self, ts: &str) {
        self.top().insert("created".into(), json!(ts));
    }

    /// Removes fields that only describe the build host (`container`, `container_config`,
    /// `docker_version`, `hostname`), which `--reproducible` must not carry from run to run.
    pub fn strip_host_fields(&mut self) {
        let top = self.top();
        for k in ["container", "container_config", "docker_version"] {
            top.remove(k);
        }
        self.inner_mut().remove("Hostname");
    }

    /// Sets the time of history entry `index` (one pushed before its time was known).
    pub fn set_history_created(&mut self, index: usize, ts: &str) {
        if let Some(o) = self
            .top()
            .get_mut("history")
            .and_then(Value::as_array_mut)
            .and_then(|h| h.get_mut(index))
            .and_then(Value::as_object_mut)
        {
            o.insert("created".into(), json!(ts));
        }
    }

    /// The newest `created` among the history entries (RFC 3339 times compared as instants).
    pub fn newest_history_time(&self) -> Option<String> {
        let hist = self.raw.get("history")?.as_array()?;
        hist.iter()
            .filter_map(|e| e.get("created")?.as_str())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| (d, t)))
            .max_by_key(|(d, _)| *d)
            .map(|(_, t)| t.to_string())
    }

    /// Number of history entries.
    pub fn history_len(&self) -> usize {
        self.raw.get("history").and_then(Value::as_array).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_only_fields_survive() {
        let raw = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Healthcheck":{"Test":["CMD","true"],"StartInterval":1000},"OnBuild":["RUN x"],"Shell":["/bin/bash","-c"],"ArgsEscaped":true},"rootfs":{"type":"layers","diff_ids":[]},"history":[]}"#;
        let mut c = ImageConfig::from_bytes(raw).unwrap();
        c.set_env("A", "1");
        let back: Value = serde_json::from_slice(&c.to_bytes()).unwrap();
        assert_eq!(back["config"]["Healthcheck"]["StartInterval"], 1000);
        assert_eq!(back["config"]["OnBuild"][0], "RUN x");
        assert_eq!(back["config"]["Shell"][1], "-c");
        assert_eq!(back["config"]["Env"], json!(["PATH=/bin", "A=1"]));
    }

    #[test]
    fn env_replace_keeps_position() {
        let mut c = ImageConfig::scratch(&Platform::host());
        c.set_env("A", "1");
        c.set_env("B", "2");
        c.set_env("A", "3=x");
        assert_eq!(c.env(), vec![("A".into(), "3=x".into()), ("B".into(), "2".into())]);
    }

    #[test]
    fn rejects_bad_diff_ids() {
        assert!(ImageConfig::from_bytes(br#"{"rootfs":{"diff_ids":["nope"]}}"#).is_err());
        assert!(ImageConfig::from_bytes(b"[]").is_err());
    }
}

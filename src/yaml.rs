//! YAML encoding, kept in one place so that swapping serde_yaml (archived upstream) for another
//! crate is a one-file change. Pure.

/// Serializes a value as YAML.
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(value)
}

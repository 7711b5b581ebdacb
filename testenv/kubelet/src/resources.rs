//! Resource quantities and `resourceFieldRef` values for env vars and downwardAPI (pure).

use k8s_openapi::api::core::v1::{Container, ResourceFieldSelector};

/// Errors of resource references.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResourceError {
    #[error("invalid quantity {0:?}")]
    BadQuantity(String),
    #[error("unsupported resource {0:?} in resourceFieldRef")]
    Unsupported(String),
    #[error("resourceFieldRef names container {0:?}, which the pod does not have")]
    NoContainer(String),
}

/// What the node offers; stands in for missing limits (as the kubelet does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeResources {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub ephemeral_bytes: u64,
}

/// Parses a Kubernetes quantity (`500m`, `2`, `1Gi`, `1e3`, `128M`) into base units.
pub fn parse_quantity(q: &str) -> Result<f64, ResourceError> {
    let bad = || ResourceError::BadQuantity(q.to_string());
    let s = q.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| bad())?;
            10f64.powi(e)
        }
        _ => return Err(bad()),
    };
    Ok(value * factor)
}

/// The value of a resourceFieldRef as the kubelet renders it: ceil(quantity / divisor).
pub fn resource_field_value(
    containers: &[Container],
    default_container: Option<&str>,
    sel: &ResourceFieldSelector,
    node: NodeResources,
) -> Result<String, ResourceError> {
    let name = sel
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(default_container);
    let container = match name {
        Some(n) => Some(
            containers
                .iter()
                .find(|c| c.name == n)
                .ok_or_else(|| ResourceError::NoContainer(n.into()))?,
        ),
        None => None,
    };
    let (kind, res) = sel
        .resource
        .split_once('.')
        .ok_or_else(|| ResourceError::Unsupported(sel.resource.clone()))?;
    let node_value = match res {
        "cpu" => f64::from(node.cpus),
        "memory" => node.memory_bytes as f64,
        "ephemeral-storage" => node.ephemeral_bytes as f64,
        _ => return Err(ResourceError::Unsupported(sel.resource.clone())),
    };
    let reqs = container.and_then(|c| c.resources.as_ref());
    let from = |m: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        m.and_then(|m| m.get(res))
            .map(|q| parse_quantity(&q.0))
            .transpose()
    };
    let limit = from(reqs.and_then(|r| r.limits.as_ref()))?;
    let value = match kind {
        "limits" => limit.unwrap_or(node_value),
        // Requests default to limits (API defaulting), else 0.
        "requests" => from(reqs.and_then(|r| r.requests.as_ref()))?
            .or(limit)
            .unwrap_or(0.0),
        _ => return Err(ResourceError::Unsupported(sel.resource.clone())),
    };
    let divisor = match &sel.divisor {
        Some(d) => parse_quantity(&d.0)?,
        None => 1.0,
    };
    if divisor <= 0.0 {
        return Err(ResourceError::BadQuantity(format!("divisor {divisor}")));
    }
    // Tiny epsilon against float noise (0.1/0.001 = 100.00000000000001).
    Ok(format!(
        "{}",
        ((value / divisor) - 1e-9).ceil().max(0.0) as u64
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    const NODE: NodeResources = NodeResources {
        cpus: 2,
        memory_bytes: 1 << 30,
        ephemeral_bytes: 1 << 33,
    };

    #[test]
    fn parses_quantities() {
        assert_eq!(parse_quantity("500m"), Ok(0.5));
        assert_eq!(parse_quantity("2"), Ok(2.0));
        assert_eq!(parse_quantity("1Gi"), Ok(1073741824.0));
        assert_eq!(parse_quantity("128M"), Ok(128e6));
        assert_eq!(parse_quantity("1e3"), Ok(1000.0));
        assert!(parse_quantity("1Zi").is_err());
        assert!(parse_quantity("abc").is_err());
    }

    fn container(limits: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some(
                    limits
                        .iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sel(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            container_name: None,
            divisor: divisor.map(|d| Quantity(d.into())),
            resource: resource.into(),
        }
    }

    #[test]
    fn values_with_limits_divisors_and_node_defaults() {
        let cs = vec![container(&[("cpu", "250m"), ("memory", "64Mi")])];
        let v = |s| resource_field_value(&cs, Some("c"), &s, NODE);
        assert_eq!(v(sel("limits.cpu", None)), Ok("1".into()));
        assert_eq!(v(sel("limits.cpu", Some("1m"))), Ok("250".into()));
        assert_eq!(v(sel("limits.memory", Some("1Mi"))), Ok("64".into()));
        assert_eq!(
            v(sel("requests.memory", None)),
            Ok("67108864".into()),
            "requests default to limits"
        );
        assert_eq!(
            v(sel("limits.ephemeral-storage", Some("1Gi"))),
            Ok("8".into()),
            "node value"
        );
        assert!(v(sel("limits.gpu", None)).is_err());
        let other = ResourceFieldSelector {
            container_name: Some("nope".into()),
            ..sel("limits.cpu", None)
        };
        assert_eq!(v(other), Err(ResourceError::NoContainer("nope".into())));
    }
}

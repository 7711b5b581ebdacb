//! Unit tests of env resolution (pure).

use super::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, PodSpec, SecretEnvSource, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("team".into()),
            uid: Some("1234-abcd".into()),
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("pk-0".into()),
            service_account_name: Some("sa1".into()),
            ..Default::default()
        }),
        status: None,
    }
}

fn facts() -> PodFacts {
    PodFacts {
        pod_ip: Some(Ipv4Addr::new(198, 18, 1, 5)),
        host_ip: Ipv4Addr::new(198, 18, 0, 1),
        node: NodeResources {
            cpus: 2,
            memory_bytes: 1 << 30,
            ephemeral_bytes: 1 << 33,
        },
    }
}

fn sources() -> Sources {
    let cm = ConfigMap {
        data: Some(BTreeMap::from([
            ("LOG".to_string(), "debug".to_string()),
            ("bad name".to_string(), "x".to_string()),
        ])),
        ..Default::default()
    };
    let secret = Secret {
        data: Some(BTreeMap::from([(
            "token".to_string(),
            ByteString(b"s3cr3t".to_vec()),
        )])),
        ..Default::default()
    };
    Sources {
        configmaps: BTreeMap::from([("cfg".to_string(), cm)]),
        secrets: BTreeMap::from([("creds".to_string(), secret)]),
    }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from(name: &str, src: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(src),
    }
}

fn field(name: &str, path: &str) -> EnvVar {
    from(
        name,
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.into(),
            }),
            ..Default::default()
        },
    )
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn base() -> Vec<(String, String)> {
    vec![
        ("KUBERNETES_SERVICE_HOST".into(), "198.18.0.1".into()),
        ("PATH".into(), "/usr/bin:/bin".into()),
    ]
}

#[test]
fn field_refs() {
    let (p, f) = (pod(), facts());
    assert_eq!(field_ref(&p, "metadata.name", &f), Ok("web-0".into()));
    assert_eq!(field_ref(&p, "metadata.namespace", &f), Ok("team".into()));
    assert_eq!(field_ref(&p, "metadata.uid", &f), Ok("1234-abcd".into()));
    assert_eq!(
        field_ref(&p, "metadata.labels['app']", &f),
        Ok("web".into())
    );
    assert_eq!(
        field_ref(&p, "metadata.labels['nope']", &f),
        Ok(String::new())
    );
    assert_eq!(
        field_ref(&p, "metadata.labels", &f),
        Ok("app=\"web\"".into())
    );
    assert_eq!(field_ref(&p, "status.podIP", &f), Ok("198.18.1.5".into()));
    assert_eq!(field_ref(&p, "status.hostIP", &f), Ok("198.18.0.1".into()));
    assert_eq!(
        field_ref(&p, "spec.serviceAccountName", &f),
        Ok("sa1".into())
    );
    assert_eq!(field_ref(&p, "spec.nodeName", &f), Ok("pk-0".into()));
    assert!(matches!(
        field_ref(&p, "spec.bogus", &f),
        Err(EnvError::UnsupportedField(_))
    ));
    let no_ip = PodFacts { pod_ip: None, ..f };
    assert_eq!(
        field_ref(&p, "status.podIP", &no_ip),
        Err(EnvError::NoPodIp)
    );
}

#[test]
fn env_order_expansion_and_sources() {
    let c = Container {
        name: "c".into(),
        env_from: Some(vec![
            EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                prefix: Some("CFG_".into()),
                secret_ref: None,
            },
            EnvFromSource {
                config_map_ref: None,
                prefix: None,
                secret_ref: Some(SecretEnvSource {
                    name: "absent".into(),
                    optional: Some(true),
                }),
            },
        ]),
        env: Some(vec![
            field("POD_NAME", "metadata.name"),
            field("POD_IP", "status.podIP"),
            var(
                "ADDR",
                "http://$(POD_IP):8200/$(POD_NAME)/$$(POD_NAME)/$(NOPE)",
            ),
            var("API", "$(KUBERNETES_SERVICE_HOST)"),
            var("CFG_LOG", "override-$(CFG_LOG)"),
            from(
                "TOKEN",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "creds".into(),
                        key: "token".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ),
            from(
                "OPTIONAL",
                EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "cfg".into(),
                        key: "missing".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ),
            var("PATH", "/custom"),
        ]),
        ..Default::default()
    };
    let env = resolve_env(&pod(), &c, &sources(), &facts(), &base()).expect("resolves");
    assert_eq!(get(&env, "CFG_LOG"), Some("override-debug"));
    assert_eq!(
        get(&env, "CFG_bad name"),
        None,
        "invalid names from envFrom are skipped"
    );
    assert_eq!(
        get(&env, "ADDR"),
        Some("http://198.18.1.5:8200/web-0/$(POD_NAME)/$(NOPE)")
    );
    assert_eq!(get(&env, "API"), Some("198.18.0.1"));
    assert_eq!(get(&env, "TOKEN"), Some("s3cr3t"));
    assert_eq!(get(&env, "OPTIONAL"), None);
    assert_eq!(
        get(&env, "PATH"),
        Some("/custom"),
        "container env beats base"
    );
    assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("198.18.0.1"));
    assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
}

#[test]
fn missing_required_sources_are_errors() {
    let c = |src: EnvVarSource| Container {
        name: "c".into(),
        env: Some(vec![from("X", src)]),
        ..Default::default()
    };
    let cm_key = |name: &str, key: &str| EnvVarSource {
        config_map_key_ref: Some(ConfigMapKeySelector {
            name: name.into(),
            key: key.into(),
            optional: None,
        }),
        ..Default::default()
    };
    let r = resolve_env(
        &pod(),
        &c(cm_key("cfg", "nokey")),
        &sources(),
        &facts(),
        &[],
    );
    assert_eq!(
        r,
        Err(EnvError::KeyMissing {
            kind: "configmap",
            name: "cfg".into(),
            key: "nokey".into()
        })
    );
    let r = resolve_env(&pod(), &c(cm_key("gone", "k")), &sources(), &facts(), &[]);
    assert_eq!(r, Err(EnvError::ConfigMapMissing("gone".into())));
    let sec = EnvVarSource {
        secret_key_ref: Some(SecretKeySelector {
            name: "gone".into(),
            key: "k".into(),
            optional: None,
        }),
        ..Default::default()
    };
    let r = resolve_env(&pod(), &c(sec), &sources(), &facts(), &[]);
    assert_eq!(r, Err(EnvError::SecretMissing("gone".into())));
    let env_from = Container {
        name: "c".into(),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "gone".into(),
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let r = resolve_env(&pod(), &env_from, &sources(), &facts(), &[]);
    assert_eq!(r, Err(EnvError::ConfigMapMissing("gone".into())));
}

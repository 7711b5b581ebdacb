//! Tests of the cluster port: CA and node certificates, the mutual-TLS listener (peers of
//! another CA or without a certificate are refused), body limits, and cluster addresses.
